package ha_test

import (
	"flag"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/hanode/hanode/internal/zktest"
)

// shared is the ZooKeeper server of the examples, started on first use.
var shared struct {
	once sync.Once
	addr string
	stop func()
}

// zkServers stands in, in the examples, for your ZooKeeper ensemble: one
// server in Docker, started on first use and stopped by TestMain.
func zkServers() []string {
	shared.once.Do(func() {
		s, stop, err := zktest.StartShared()
		if err != nil {
			panic(err)
		}
		shared.addr, shared.stop = s.Addr, stop
	})
	return []string{shared.addr}
}

// TestMain leaves the examples out when Docker does not answer: an example
// cannot skip itself, and without ZooKeeper it could only fail.
func TestMain(m *testing.M) {
	flag.Parse()
	if err := zktest.DockerReady(); err != nil {
		if required, why := zktest.DockerRequired(); required {
			fmt.Fprintf(os.Stderr, "ha: Docker is not available, and %s requires it: %v\n", why, err)
			os.Exit(1)
		}
		skip := flag.Lookup("test.skip").Value.String()
		if skip != "" {
			skip += "|"
		}
		if err := flag.Set("test.skip", skip+"^Example"); err != nil {
			panic(err)
		}
		fmt.Fprintf(os.Stderr, "ha: skipping the examples, which need ZooKeeper in Docker: %v\n", err)
	}
	code := m.Run()
	if shared.stop != nil {
		shared.stop()
	}
	os.Exit(code)
}
