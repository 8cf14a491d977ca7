#!/bin/sh
# hanode-check.sh: exit 0 only when the local hanode answers "ok" (it is the
# active member of its HA group), 1 otherwise: standby, starting,
# disconnected, stopping, not running, or no answer within the timeout.
#
# For keepalived, so that the virtual IP follows the active node:
#
#   vrrp_script chk_hanode {
#       script "/usr/local/lib/hanode/hanode-check.sh"
#       interval 1
#       fall 2
#       rise 1
#   }
#   vrrp_instance VI_1 {
#       ...
#       track_script {
#           chk_hanode
#       }
#   }
#
# Usage: hanode-check.sh [URL]
#   URL      default http://127.0.0.1:9640/v2/ping/net/1/se/ (HTTP_LISTEN, NET_ID)
#   HANODE_CHECK_TIMEOUT  seconds to wait for the answer (default 1)
# Needs curl or wget.
url=${1:-http://127.0.0.1:9640/v2/ping/net/1/se/}
timeout=${HANODE_CHECK_TIMEOUT:-1}

if command -v curl >/dev/null 2>&1; then
    body=$(curl --silent --fail --max-time "$timeout" "$url") || exit 1
elif command -v wget >/dev/null 2>&1; then
    body=$(wget --quiet --tries=1 --timeout="$timeout" --output-document=- "$url") || exit 1
else
    echo "hanode-check.sh: neither curl nor wget is installed" >&2
    exit 1
fi
# The body is exactly "ok" on the active node (200); anything else is not.
[ "$body" = ok ]
