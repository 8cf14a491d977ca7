package zktest

// A server for code that has no testing.TB: a TestMain, and the runnable
// examples it serves (examples take no *testing.T, so they cannot skip).

import (
	"context"
	"errors"
	"fmt"
	"os"

	tclog "github.com/testcontainers/testcontainers-go/log"
)

// ErrNoDocker is wrapped by DockerReady when the Docker engine does not
// answer: tests that need ZooKeeper cannot run here.
var ErrNoDocker = errors.New("zktest: the Docker engine does not answer")

// DockerReady reports whether the Docker engine answers (the same one
// probe per test binary as RequireDocker): nil, or an error wrapping
// ErrNoDocker. Where Docker is required (CI, RequireDockerEnv) the error
// says so, and the caller must fail rather than leave tests out
// (DockerRequired). It says nothing of the image (Start reports a missing
// one with a hint).
func DockerReady() error {
	docker.once.Do(func() { docker.err = probeDocker() })
	if docker.err != nil {
		return fmt.Errorf("%w: %w", ErrNoDocker, docker.err)
	}
	return nil
}

// DockerRequired reports whether a missing Docker engine must fail the run
// rather than skip what needs it, and which variable says so.
func DockerRequired() (bool, string) { return dockerRequired() }

// StartShared starts a standalone server like Start, outside any test: the
// caller stops it with the returned function (a TestMain, after m.Run).
func StartShared() (*Server, func(), error) {
	img := Image()
	ctx, cancel := context.WithTimeout(context.Background(), dockerOpTime+readyTimeout)
	defer cancel()
	if err := requireImage(ctx, img); err != nil {
		return nil, nil, err
	}
	s := &Server{image: img, logger: tclog.NewNoopLogger(), testName: "shared"}
	stop := func() {
		if err := s.remove(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	if err := s.createFresh(ctx); err != nil {
		stop()
		return nil, nil, fmt.Errorf("zktest: start %s: %w", img, err)
	}
	if _, err := s.waitReady(ctx, readyTimeout); err != nil {
		stop()
		return nil, nil, fmt.Errorf("zktest: %w", err)
	}
	return s, stop, nil
}
