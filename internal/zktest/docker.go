package zktest

// Whether a Docker engine is there: tests that need a real ZooKeeper skip
// without one, except where Docker must be there.

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
)

// RequireDockerEnv names the environment variable that decides whether a
// missing Docker engine fails the tests that need one (true: 1, true) or
// skips them (false: 0, false). Unset, it follows CI: a CI run (CI=true, as
// .ci/run is run) fails, so that CI never passes by skipping.
const RequireDockerEnv = "HANODE_REQUIRE_DOCKER"

// dockerProbeTimeout bounds the one probe of the engine.
const dockerProbeTimeout = 15 * time.Second

// skipNoDocker is the one message of every test skipped for want of Docker.
// Why the engine could not be reached is said where Docker is required.
const skipNoDocker = "Docker is not available: skipping tests that need a real ZooKeeper " +
	"(run `make test` on a machine with Docker; " + RequireDockerEnv + "=1 fails instead and says why)"

var docker struct {
	once sync.Once
	err  error // nil when the engine answered
}

// RequireDocker returns when a Docker engine answers. Otherwise it skips the
// test with one message, or fails it where Docker is required (see
// RequireDockerEnv) with why the engine could not be reached. The engine
// is probed once per test binary. Start, StartWith and StartEnsemble call
// it first; a test that needs Docker some other way calls it itself.
func RequireDocker(t testing.TB) {
	t.Helper()
	docker.once.Do(func() { docker.err = probeDocker() })
	if docker.err == nil {
		return
	}
	if required, why := dockerRequired(); required {
		t.Fatalf("zktest: Docker is not available, and %s requires it: %v", why, docker.err)
	}
	t.Skip(skipNoDocker)
}

// dockerRequired reports whether a missing engine is a failure, and which
// variable says so.
func dockerRequired() (bool, string) {
	if v, ok := os.LookupEnv(RequireDockerEnv); ok {
		if b, err := strconv.ParseBool(v); err == nil {
			return b, RequireDockerEnv + "=" + v
		}
		// Anything else set there asks for Docker rather than for a skip.
		return true, RequireDockerEnv + "=" + v
	}
	if b, err := strconv.ParseBool(os.Getenv("CI")); err == nil && b {
		return true, "CI=" + os.Getenv("CI")
	}
	return false, ""
}

// probeDocker asks the engine testcontainers would use for a ping.
func probeDocker() (err error) {
	defer func() {
		// Some of testcontainers' lookups panic when they find no engine.
		if r := recover(); r != nil {
			err = fmt.Errorf("cannot reach the Docker engine: %v", r)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), dockerProbeTimeout)
	defer cancel()
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return fmt.Errorf("cannot reach the Docker engine: %w", err)
	}
	defer cli.Close()
	if _, err := cli.Ping(ctx, client.PingOptions{}); err != nil {
		return fmt.Errorf("cannot reach the Docker engine at %s: %w", cli.DaemonHost(), err)
	}
	return nil
}
