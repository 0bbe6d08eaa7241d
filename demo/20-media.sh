# Media: a loop-device "USB stick" is read-only before the daemon even decides; then the
# daemon's verdicts. Sourced by scripts/demo.sh (conventions in demo/lib.sh); needs root.
#
# This machine may have no USB stick to plug in, so loop devices stand in for sticks: the
# demo-only rule tests/data/media/59-edgeguard-test-usb.rules gives a loop device whose
# image is named egm-stick-*.img the USB identity written next to it (<image>.usb). The
# shipped rules/61-edgeguard-media.rules is installed unchanged and does the real work.

say "removable media: a new USB stick is made read-only by the udev rule, before edgeguard runs"
MEDIA_DIR="$DEMO_TMP/media"
UDEV_RULES=/run/udev/rules.d
mkdir -p "$MEDIA_DIR" "$UDEV_RULES"
install -m 0644 rules/61-edgeguard-media.rules tests/data/media/59-edgeguard-test-usb.rules \
  "$UDEV_RULES/"
on_exit "rm -f $UDEV_RULES/61-edgeguard-media.rules $UDEV_RULES/59-edgeguard-test-usb.rules; udevadm control --reload 2>/dev/null"
if ! udevadm control --ping >/dev/null 2>&1; then
  # No udevd on this machine (a container): run one for the demo, stopped by PID at the end.
  /lib/systemd/systemd-udevd >/dev/null 2>&1 &
  on_exit "kill $!; wait $! 2>/dev/null"
  for _ in $(seq 1 100); do udevadm control --ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
udevadm control --reload

# media_detach DEV: detach, then clear the read-only flag (it outlives the detach).
media_detach() { losetup -d "$1"; udevadm settle; blockdev --setrw "$1"; }

# media_stick NAME SERIAL KIND: a 32 MiB image (vfat or luks2) with a USB identity;
# prints the loop device (the caller registers media_detach: this runs in a subshell).
media_stick() {
  local img="$MEDIA_DIR/egm-stick-$1.img"
  truncate -s 32M "$img"
  case $3 in
    vfat) mkfs.vfat -n DEMOSTICK "$img" >/dev/null ;;
    luks2) printf 'demo-key' > "$MEDIA_DIR/key"
           cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
             --key-file "$MEDIA_DIR/key" "$img" ;;
  esac
  printf 'ID_BUS=usb\nID_VENDOR_ID=0951\nID_MODEL_ID=1666\nID_SERIAL_SHORT=%s\nID_VENDOR=Demo\nID_MODEL=Stick_%s\n' \
    "$2" "$1" > "$img.usb"
  local dev
  dev=$(losetup --find --show "$img")
  udevadm settle
  echo "$dev"
}

visitor=$(media_stick visitor VISITOR-0001 vfat)
on_exit "media_detach $visitor"
run blockdev --getro "$visitor"
run udevadm info --query=property "$visitor" | grep -E '^(ID_BUS|ID_SERIAL_SHORT|EDGEGUARD_MEDIA|UDISKS_IGNORE)='
run dd if=/dev/zero of="$visitor" bs=4k count=1 conv=notrunc,fsync || echo "(write refused: the stick is read-only)"

say "edgeguard decides: the visitor's stick stays read-only; the trust's encrypted stick becomes writable"
trusted=$(media_stick trust IT-0042-DEMO luks2)
on_exit "media_detach $trusted"
cat > "$DEMO_TMP/media-register.yaml" <<'YAML'
media:
  trusted_devices:
    - id: IT-0042
      vendor_id: "0951"
      product_id: "1666"
      serial: IT-0042-DEMO
      description: demo trust stick (LUKS2)
YAML
run "$EG" check "$DEMO_TMP/media-register.yaml"
eg_start --policy "$DEMO_TMP/media-register.yaml"
for _ in $(seq 1 50); do [ "$(blockdev --getro "$trusted")" = 0 ] && break; sleep 0.1; done
run "$EG" media list --socket "$SOCK"
run blockdev --getro "$visitor" "$trusted"

say "the verdicts in the audit log"
grep -h '"usb-' "$AUDIT_DIR"/*.jsonl | python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    v = r.get("volume", {})
    print(r["event"]["action"], r["event"]["outcome"], v.get("device_name"),
          "serial=" + str(v.get("serial_number")), "writable=" + str(v.get("writable")),
          "-", r["edgeguard"]["media"]["reason"])'
eg_stop
