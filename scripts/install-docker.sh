#!/usr/bin/env bash
# Install Debian's Docker engine and start dockerd where no engine answers.
#
# The chaos harness (chaos/) talks to a Docker engine through the docker SDK. On a developer's
# workstation one usually runs already; on CI and on these machines none does, so this script:
#   1. returns at once if `docker info` (or the socket) already answers;
#   2. apt-get installs docker.io (dockerd, containerd, runc), iptables and debootstrap;
#   3. starts dockerd in the background with a storage driver the kernel supports
#      (overlay2 if an overlay mount works, else vfs), logging to /var/log/dockerd.log;
#   4. waits up to 60 s for the socket to answer.
# Root is required (apt-get, dockerd). The engine keeps running after the script exits.
set -euo pipefail

SOCKET=/var/run/docker.sock
LOG=${DOCKERD_LOG:-/var/log/dockerd.log}

engine_answers() {
    # curl is not always installed; python3 is (the project needs it).
    python3 - "$SOCKET" <<'PY' 2>/dev/null
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(3)
s.connect(sys.argv[1])
s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
sys.exit(0 if b"200 OK" in s.recv(1024) else 1)
PY
}

if [ -S "$SOCKET" ] && engine_answers; then
    echo "install-docker: an engine already answers on $SOCKET"
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "install-docker: no engine answers and we are not root; start dockerd yourself" >&2
    exit 1
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # --no-install-recommends: skips apparmor, git, etc.; iptables is what dockerd's bridge needs.
    apt-get install -y -q --no-install-recommends docker.io containerd runc iptables \
        debootstrap ca-certificates
fi

# Pick the storage driver: overlay2 needs a working overlay mount on /var/lib/docker's fs.
driver=vfs
probe=$(mktemp -d)
mkdir -p "$probe"/{l,u,w,m}
if mount -t overlay overlay -o "lowerdir=$probe/l,upperdir=$probe/u,workdir=$probe/w" "$probe/m" 2>/dev/null; then
    umount "$probe/m"
    driver=overlay2
fi
rm -rf "$probe"

# Debian's iptables defaults to the nft backend; dockerd works with either as long as the
# kernel has the matching modules. Prefer legacy if the nft backend cannot list tables.
if command -v update-alternatives >/dev/null && ! iptables -L -n >/dev/null 2>&1; then
    update-alternatives --set iptables /usr/sbin/iptables-legacy || true
    update-alternatives --set ip6tables /usr/sbin/ip6tables-legacy || true
fi

echo "install-docker: starting dockerd (storage driver $driver), log in $LOG"
nohup dockerd --storage-driver="$driver" >"$LOG" 2>&1 &

for _ in $(seq 60); do
    if [ -S "$SOCKET" ] && engine_answers; then
        echo "install-docker: engine up"
        exit 0
    fi
    sleep 1
done
echo "install-docker: dockerd did not answer within 60 s; last lines of $LOG:" >&2
tail -n 30 "$LOG" >&2
exit 1
