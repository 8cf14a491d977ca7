package hatest

import (
	"testing"

	"github.com/hanode/hanode/internal/zktest"
)

// ZooKeeperOptions configure StartZooKeeper. The zero value is the default.
type ZooKeeperOptions struct {
	// Image is the ZooKeeper image to run (optional: default
	// $HANODE_ZK_IMAGE, else hanode-zookeeper:3.8-2, which `make zk-image`
	// builds). It must be present locally: it is never pulled. An image
	// other than hanode's (the official "zookeeper:3.9", say) is run with
	// its own entry point, configured through its environment.
	Image string
}

// ZooKeeper is a standalone ZooKeeper server in a Docker container, removed
// when the test ends.
type ZooKeeper struct {
	// Addr is the client address on this host, "127.0.0.1:PORT".
	Addr string
	srv  *zktest.Server
}

// StartZooKeeper starts a ZooKeeper server and waits until it serves; it is
// removed in t.Cleanup. Its tickTime is 500 ms (hanode's image), so sessions
// of 1 s to 10 s are honoured. Without a Docker engine it skips the test
// (see the package documentation).
func StartZooKeeper(t testing.TB, opts ZooKeeperOptions) *ZooKeeper {
	t.Helper()
	srv := zktest.StartWith(t, zktest.Options{Image: opts.Image})
	return &ZooKeeper{Addr: srv.Addr, srv: srv}
}

// DefaultImage is the image StartZooKeeper runs when neither
// ZooKeeperOptions.Image nor $HANODE_ZK_IMAGE names one.
const DefaultImage = zktest.DefaultImage
