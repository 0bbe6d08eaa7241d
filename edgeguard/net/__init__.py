"""Network watch: kernel-prefiltered capture, decoders and detectors."""
