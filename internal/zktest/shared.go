package zktest

// A server for code that has no testing.TB: a TestMain, and the runnable
// examples it serves (examples take no *testing.T, so they cannot skip).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
)

// ErrNoDocker is wrapped by DockerReady when the Docker engine does not
// answer: tests that need ZooKeeper cannot run here.
var ErrNoDocker = errors.New("zktest: the Docker engine does not answer")

// DockerReady reports whether the Docker engine answers a ping within a few
// seconds: nil, or an error wrapping ErrNoDocker. It says nothing of the
// image (Start reports a missing one with a hint).
func DockerReady() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNoDocker, err)
	}
	defer cli.Close()
	if _, err := cli.Ping(ctx, client.PingOptions{}); err != nil {
		return fmt.Errorf("%w: %w", ErrNoDocker, err)
	}
	return nil
}

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
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.ctr == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), dockerOpTime)
		defer cancel()
		if err := s.ctr.Terminate(ctx); err != nil && !errdefs.IsNotFound(err) {
			fmt.Fprintf(os.Stderr, "zktest: remove container of %s: %v\n", s, err)
		}
		s.ctr, s.running = nil, false
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
