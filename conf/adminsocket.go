package conf

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// KeyAdminSocket is the admin socket (issue 18): a Unix socket on this
// host, owned by the service's user and mode 600, on which the node serves
// the admin API and the read routes without a token.
const KeyAdminSocket = "ADMIN_SOCKET"

// maxSocketPath is the longest path a Unix socket may have on Linux:
// sun_path holds 108 bytes, the last a NUL.
const maxSocketPath = 107

// adminSocket checks ADMIN_SOCKET: empty (no socket), or an absolute path
// short enough for a socket that is not a directory. Whether the path
// exists as something else than a socket, or is served by a live process,
// is for the node to find out when it listens: the CLI reads this key too,
// and the socket comes and goes with the node.
func (v *validation) adminSocket() string {
	s := v.get(KeyAdminSocket)
	p := s.Value
	switch {
	case p == "":
		return ""
	case !filepath.IsAbs(p):
		v.fail(KeyAdminSocket, "must be an absolute path, such as /run/hanode/admin.sock")
	case strings.HasSuffix(p, "/"):
		v.fail(KeyAdminSocket, "ends with /: name the socket file, such as /run/hanode/admin.sock")
	case strings.IndexByte(p, 0) >= 0:
		v.fail(KeyAdminSocket, "has a NUL character")
	case len(p) > maxSocketPath:
		v.fail(KeyAdminSocket, fmt.Sprintf("%d bytes, longer than the %d a Unix socket's path may have: choose a shorter one, such as /run/hanode/admin.sock",
			len(p), maxSocketPath))
	default:
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			v.fail(KeyAdminSocket, fmt.Sprintf("is a directory: name the socket file inside it, such as %s", filepath.Join(p, "admin.sock")))
		}
	}
	return p
}
