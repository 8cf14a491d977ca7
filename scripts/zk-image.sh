#!/usr/bin/env bash
# Builds a real Apache ZooKeeper image from Debian's packages, for machines that
# cannot pull from a container registry. Does nothing when the image exists.
#
#   scripts/zk-image.sh [TAG]      (default: hanode-zookeeper:3.8-2)
#
# The mirror is read from the machine's apt sources; no host is hard-coded.
set -euo pipefail

tag="${1:-${HANODE_ZK_IMAGE:-hanode-zookeeper:3.8-2}}"
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "zk-image: $tag present"
  exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
  echo "zk-image: installing debootstrap"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

mirror=""
for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
  [ -f "$f" ] || continue
  mirror=$(awk '/^URIs:/ {print $2; exit} /^deb / {print $2; exit}' "$f")
  [ -n "$mirror" ] && break
done
if [ -z "$mirror" ]; then
  echo "zk-image: no Debian mirror found in the apt sources" >&2
  exit 1
fi
suite="${ZK_IMAGE_SUITE:-bookworm}"

rootfs=$(mktemp -d /tmp/hanode-zk-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "zk-image: debootstrap $suite from $mirror (about 2 minutes)"
debootstrap --variant=minbase --include=openjdk-17-jre-headless,zookeeper \
  "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || { tail -20 "$rootfs.log" >&2; exit 1; }
rm -f "$rootfs.log"
rm -rf "$rootfs"/usr/share/doc "$rootfs"/usr/share/man "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/*

# Entry point: a standalone server on 2181 with data in /var/lib/zookeeper.
# Arguments replace the default CMD: "2181 /var/lib/zookeeper 500" (tickTime 500 ms:
# sessions of 1 s to 10 s are honoured, and a dead client's session ends at most
# one tick after its timeout, since ZooKeeper expires sessions on tick boundaries). An ensemble member runs
# "zk-quorum" with /conf/zoo.cfg instead (see internal/zktest).
cat >"$rootfs/usr/local/bin/zk-standalone" <<'SH'
#!/bin/sh
# zk-standalone [PORT [DATADIR [TICKTIME [MAXCNXNS]]]]: MAXCNXNS caps the
# connections of one client address (0: no cap; ZooKeeper's default is 60).
exec java -cp /etc/zookeeper/conf:/usr/share/java/zookeeper.jar \
  -Dzookeeper.admin.enableServer=false -Dzookeeper.4lw.commands.whitelist=srvr,ruok,stat,mntr,srst,cons,wchs \
  org.apache.zookeeper.server.ZooKeeperServerMain "${1:-2181}" "${2:-/var/lib/zookeeper}" "${3:-500}" "${4:-60}"
SH
cat >"$rootfs/usr/local/bin/zk-quorum" <<'SH'
#!/bin/sh
# zk-quorum CONFIG: a member of an ensemble; myid must be in the config's dataDir.
exec java -cp /etc/zookeeper/conf:/usr/share/java/zookeeper.jar \
  -Dzookeeper.admin.enableServer=false \
  org.apache.zookeeper.server.quorum.QuorumPeerMain "${1:-/conf/zoo.cfg}"
SH
chmod 0755 "$rootfs/usr/local/bin/zk-standalone" "$rootfs/usr/local/bin/zk-quorum"
mkdir -p "$rootfs/var/lib/zookeeper"

tar -C "$rootfs" -c . | docker import \
  -c 'ENTRYPOINT ["/usr/local/bin/zk-standalone"]' \
  -c 'CMD ["2181", "/var/lib/zookeeper", "500"]' \
  -c 'EXPOSE 2181 2888 3888' \
  - "$tag" >/dev/null
echo "zk-image: built $tag"
