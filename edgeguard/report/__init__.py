"""Reading the audit trail for people: filtered views (``audit tail``) and the summary a
head teacher can read (``edgeguard report``, plain text or one self-contained HTML page).

Records are read from the segment files as written (:mod:`edgeguard.report.records`),
never from the daemon; the chain is checked with the audit verifier.
"""
