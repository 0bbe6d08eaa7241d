# Core: the daemon on its embedded default policy; a policy reload it refuses.
say "edgeguard starts on its embedded default policy"
run "$EG" check
eg_start
run "$EG" status --socket "$SOCK"

say "an administrator drops a broken override in: SIGHUP is refused, the running policy stays"
bad="$DEMO_TMP/broken.yaml"
printf 'mode: enforce\nmedia:\n  non_trust: writable\n' > "$bad"
run "$EG" check "$bad" || true
eg_stop
site="$DEMO_TMP/site.yaml"
printf 'mode: monitor\n' > "$site"
eg_start --policy "$site"
cp "$bad" "$site"
kill -HUP "$EG_PID"
sleep 1
run "$EG" status --socket "$SOCK"
eg_stop
