// Package zktest runs real Apache ZooKeeper servers in Docker containers for
// tests: a standalone server (Start) or an ensemble of QuorumPeerMain members on
// a private Docker network (StartEnsemble).
//
// The image is $HANODE_ZK_IMAGE, else "hanode-zookeeper:3.8-2", which
// scripts/zk-image.sh (make zk-image) builds from Debian's packages on machines
// without a registry. Images are never pulled: a missing image fails the test
// with a hint. Any other image (for example the official "zookeeper:3.9") is
// run best effort with its own entry point, configured through its environment
// variables (ZOO_TICK_TIME, ZOO_MY_ID, ZOO_SERVERS, ...); pull it yourself first.
//
// Every server's client port 2181 is published on 127.0.0.1 at a host port
// chosen here and kept for the server's life, so Stop and Restart leave a
// client's connect string valid. A server is ready when the four-letter word
// "srvr" answers with a "Mode:" line. Containers carry the label
// org.hanode.zktest (and testcontainers' org.testcontainers=true) and are
// removed in t.Cleanup, together with the network of an ensemble.
//
// Without a reachable Docker engine, every test that starts a server is
// skipped with one message (RequireDocker), except in CI (CI=true) or with
// HANODE_REQUIRE_DOCKER=1, where it fails: CI must never pass by skipping.
//
// Importing the package sets TESTCONTAINERS_RYUK_DISABLED=true (the reaper image
// cannot be pulled) and TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1 (otherwise
// testcontainers dials the default gateway) unless they are already set.
package zktest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
)

// DefaultImage is the image built by scripts/zk-image.sh (make zk-image).
const DefaultImage = "hanode-zookeeper:3.8-2"

// ImageEnv names the environment variable that overrides DefaultImage.
const ImageEnv = "HANODE_ZK_IMAGE"

// LabelKey is the label every container started here carries; its value is
// "standalone" or "member". Find leftovers with
// `docker ps -a --filter label=org.hanode.zktest`.
const LabelKey = "org.hanode.zktest"

const (
	clientPort   = "2181/tcp"
	tickTimeMs   = 500
	readyTimeout = 60 * time.Second // a server must serve within this after its start
	dockerOpTime = 60 * time.Second // bound on any single create/start/stop/remove
	stopGrace    = 10 * time.Second // SIGTERM, then SIGKILL
	probeTimeout = 2 * time.Second  // one srvr round trip
	pollInterval = 100 * time.Millisecond
	portAttempts = 5
	logTailBytes = 8 << 10
	fourLetters  = "srvr,ruok,stat,mntr"
	dataDir      = "/var/lib/zookeeper"
	quorumConfig = "/conf/zoo.cfg"
)

// ErrNotServing is returned by Mode when the server answers srvr but does not
// serve requests (an ensemble member without a quorum).
var ErrNotServing = errors.New("zookeeper: not currently serving requests")

func init() {
	setDefaultEnv("TESTCONTAINERS_RYUK_DISABLED", "true")
	setDefaultEnv("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
}

func setDefaultEnv(key, value string) {
	if _, ok := os.LookupEnv(key); !ok {
		_ = os.Setenv(key, value)
	}
}

// Image is the image tests run: $HANODE_ZK_IMAGE, else "hanode-zookeeper:3.8-2".
func Image() string {
	if img := strings.TrimSpace(os.Getenv(ImageEnv)); img != "" {
		return img
	}
	return DefaultImage
}

// isLocalImage reports whether img is a hanode-zookeeper image (with the
// zk-standalone and zk-quorum entry points) rather than the official one.
func isLocalImage(img string) bool {
	name := img
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	if i := strings.IndexAny(name, ":@"); i >= 0 {
		name = name[:i]
	}
	return name == "hanode-zookeeper"
}

var imageChecked sync.Map // image name -> struct{} once found locally

// requireImage fails unless img is present locally; it never pulls.
func requireImage(ctx context.Context, img string) error {
	if _, ok := imageChecked.Load(img); ok {
		return nil
	}
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return fmt.Errorf("zktest: cannot reach the Docker engine (is it running? `docker info`): %w", err)
	}
	defer cli.Close()
	if _, err := cli.ImageInspect(ctx, img); err != nil {
		if errdefs.IsNotFound(err) {
			if isLocalImage(img) {
				return fmt.Errorf("zktest: image %q is missing: run `make zk-image` (scripts/zk-image.sh) or set %s to an image present locally", img, ImageEnv)
			}
			return fmt.Errorf("zktest: image %q is missing and zktest never pulls: run `docker pull %s`, or unset %s to use %s (`make zk-image`)", img, img, ImageEnv, DefaultImage)
		}
		return fmt.Errorf("zktest: inspect image %q: %w", img, err)
	}
	imageChecked.Store(img, struct{}{})
	return nil
}

// Server is one running ZooKeeper server reachable from the host at Addr
// ("127.0.0.1:PORT"). Addr does not change over Stop and Restart.
type Server struct {
	// Addr is the client address on the host, "127.0.0.1:PORT".
	Addr string
	// SecureAddr is the secure client port's address on the host, for a
	// server started with Options.TLS ("" otherwise; see TLS).
	SecureAddr string
	// ID is the member's myid (1..n) in an ensemble, 0 for a standalone server.
	ID int

	image    string
	port     int
	ens      *Ensemble  // nil for a standalone server
	ip       netip.Addr // a member's fixed address on the ensemble's network
	logger   tclog.Logger
	testName string

	opts       Options
	tls        *serverTLS // Options.TLS: the certificates (tls.go)
	securePort int

	mu      sync.Mutex
	ctr     testcontainers.Container
	running bool
}

// Options tune a standalone server.
type Options struct {
	// TickMs is ZooKeeper's tickTime in milliseconds (default 500). Sessions
	// of 2 to 20 ticks are honoured, and a dead client's session ends at
	// most one tick after its timeout. ZooKeeper's own default is 2000.
	TickMs int
	// MaxClientCnxns caps connections from one address; 0 (the default
	// here) means no cap, so many clients on one host are never refused
	// (ZooKeeper's own default is 60).
	MaxClientCnxns int
	// Image is the image to run instead of Image()'s (empty: Image()).
	Image string
	// TLS adds ZooKeeper's secure client port (SecureAddr), which requires
	// a client certificate; the CA and a client certificate are made for
	// the test (Server.TLS). The local image only.
	TLS bool
}

func (o Options) tick() int {
	if o.TickMs <= 0 {
		return tickTimeMs
	}
	return o.TickMs
}

// Start starts a standalone server and waits until it serves. Its tickTime is
// 500 ms: sessions of 1 s to 10 s are honoured, and ZooKeeper, which expires
// sessions on tick boundaries, ends a dead client's session at most half a
// second after its timeout. It is terminated in t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith is Start with options (the local image only; the official
// image keeps its environment's settings).
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	RequireDocker(t)
	img := o.Image
	if img == "" {
		img = Image()
	}
	ctx, cancel := context.WithTimeout(context.Background(), dockerOpTime+readyTimeout)
	defer cancel()
	if err := requireImage(ctx, img); err != nil {
		t.Fatal(err)
	}
	s := &Server{image: img, logger: tclog.TestLogger(t), testName: t.Name(), opts: o}
	if o.TLS {
		if err := s.checkTLSOptions(); err != nil {
			t.Fatal(err)
		}
		st, err := newServerTLS(t.TempDir())
		if err != nil {
			t.Fatalf("zktest: certificates: %v", err)
		}
		s.tls = st
	}
	t.Cleanup(func() { s.terminate(t) })
	if err := s.createFresh(ctx); err != nil {
		t.Fatalf("zktest: start %s: %v", img, err)
	}
	if _, err := s.waitReady(ctx, readyTimeout); err != nil {
		t.Fatalf("zktest: %v", err)
	}
	return s
}

// Stop stops the server's container, keeping its data. Stopping a stopped
// server does nothing.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dockerOpTime)
	defer cancel()
	if err := s.stop(ctx); err != nil {
		t.Fatalf("zktest: stop %s: %v", s, err)
	}
}

// Restart starts the server again on the same host port, with the data it had
// (stopping it first if it runs), and waits until it serves: any mode for a
// standalone server, leader or follower for an ensemble member (which needs a
// quorum: to bring back a majority at once use Ensemble.Restart).
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*dockerOpTime+readyTimeout)
	defer cancel()
	if err := s.restart(ctx, false); err != nil {
		t.Fatalf("zktest: restart %s: %v", s, err)
	}
	if _, err := s.waitReady(ctx, readyTimeout); err != nil {
		t.Fatalf("zktest: %v", err)
	}
}

// RestartWiped replaces the server's container by a new one with an empty data
// directory, on the same host port (and, for a member, the same network alias
// and myid), and waits until it serves like Restart.
func (s *Server) RestartWiped(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*dockerOpTime+readyTimeout)
	defer cancel()
	if err := s.restart(ctx, true); err != nil {
		t.Fatalf("zktest: restart %s wiped: %v", s, err)
	}
	if _, err := s.waitReady(ctx, readyTimeout); err != nil {
		t.Fatalf("zktest: %v", err)
	}
}

// Running reports whether the server's container was started and not stopped.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}

// ContainerID is the Docker id of the server's current container ("" if none).
func (s *Server) ContainerID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctr == nil {
		return ""
	}
	return s.ctr.GetContainerID()
}

func (s *Server) String() string {
	if s.ens != nil {
		return fmt.Sprintf("zk%d (%s, %s)", s.ID, s.Addr, s.image)
	}
	return fmt.Sprintf("standalone %s (%s)", s.Addr, s.image)
}

func (s *Server) stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctr == nil || !s.running {
		return nil
	}
	grace := stopGrace
	if err := s.ctr.Stop(ctx, &grace); err != nil {
		return err
	}
	s.running = false
	return nil
}

func (s *Server) restart(ctx context.Context, wipe bool) error {
	if err := s.stop(ctx); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if wipe || s.ctr == nil {
		if s.ctr != nil {
			if err := s.ctr.Terminate(ctx); err != nil {
				return fmt.Errorf("remove old container: %w", err)
			}
			s.ctr = nil
		}
		return s.retryPortConflict(ctx, func() error {
			ctr, err := s.create(ctx)
			if err != nil {
				return err
			}
			s.ctr, s.running = ctr, true
			return nil
		})
	}
	return s.retryPortConflict(ctx, func() error {
		if err := s.ctr.Start(ctx); err != nil {
			return err
		}
		s.running = true
		return nil
	})
}

// retryPortConflict runs op until it does not fail with a host port conflict,
// for at most 5 s: the port belongs to this server, so a conflict can only be a
// short-lived socket that happened to get it while the server was stopped.
func (s *Server) retryPortConflict(ctx context.Context, op func() error) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		err := op()
		if err == nil || !isPortConflict(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("host port %d is taken by something else: %w", s.port, err)
		case <-tick.C:
		}
	}
}

// createFresh creates and starts the first container on a newly picked free
// port, picking another port when binding fails.
func (s *Server) createFresh(ctx context.Context) error {
	var lastErr error
	for range portAttempts {
		port, err := freePort()
		if err != nil {
			return err
		}
		if s.tls != nil {
			if s.securePort, err = freePort(); err != nil {
				return err
			}
			s.SecureAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.securePort))
		}
		s.mu.Lock()
		s.port = port
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		ctr, err := s.create(ctx)
		if err == nil {
			s.ctr, s.running = ctr, true
		}
		s.mu.Unlock()
		if err == nil {
			return nil
		}
		if !isPortConflict(err) {
			return err
		}
		lastErr = err
	}
	return fmt.Errorf("no free host port after %d attempts: %w", portAttempts, lastErr)
}

// create creates and starts a container for s on s.port. On failure nothing is
// left behind.
func (s *Server) create(ctx context.Context) (testcontainers.Container, error) {
	req := s.request()
	ctr, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: req,
		Started:          true,
		Logger:           s.logger,
	})
	if err != nil {
		if ctr != nil {
			rmCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dockerOpTime)
			_ = ctr.Terminate(rmCtx)
			cancel()
		}
		return nil, err
	}
	return ctr, nil
}

func (s *Server) request() testcontainers.ContainerRequest {
	port := strconv.Itoa(s.port)
	role := "standalone"
	if s.ens != nil {
		role = "member"
	}
	req := testcontainers.ContainerRequest{
		Image: s.image,
		// Only the client port: the image also exposes 2888 and 3888, which
		// testcontainers would otherwise publish on 0.0.0.0.
		ExposedPorts: []string{clientPort},
		Labels: map[string]string{
			LabelKey:                role,
			LabelKey + ".test":      s.testName,
			LabelKey + ".host-port": port,
		},
		HostConfigModifier: func(hc *container.HostConfig) {
			hc.PortBindings = network.PortMap{
				network.MustParsePort(clientPort): {{HostIP: loopback, HostPort: port}},
			}
			if s.tls != nil {
				hc.PortBindings[network.MustParsePort(securePort)] = []network.PortBinding{{HostIP: loopback, HostPort: strconv.Itoa(s.securePort)}}
			}
		},
	}
	local := isLocalImage(s.image)
	switch {
	case s.ens == nil && s.tls != nil:
		s.tlsRequest(&req)
	case s.ens == nil && local:
		// ZooKeeperServerMain's arguments: port datadir [ticktime [maxcnxns]].
		req.Cmd = []string{"2181", dataDir, strconv.Itoa(s.opts.tick()), strconv.Itoa(s.opts.MaxClientCnxns)}
	case s.ens == nil:
		req.Env = officialEnv()
	case local:
		req.Entrypoint = []string{"/usr/local/bin/zk-quorum"}
		req.Cmd = []string{quorumConfig}
		req.Files = []testcontainers.ContainerFile{
			{Reader: strings.NewReader(s.ens.zooCfg()), ContainerFilePath: quorumConfig, FileMode: 0o644},
			// Replaces the image's myid symlink into /etc/zookeeper/conf.
			{Reader: strings.NewReader(strconv.Itoa(s.ID) + "\n"), ContainerFilePath: dataDir + "/myid", FileMode: 0o644},
		}
	default:
		env := officialEnv()
		env["ZOO_MY_ID"] = strconv.Itoa(s.ID)
		env["ZOO_SERVERS"] = strings.Join(s.ens.serverLines(), " ")
		env["ZOO_STANDALONE_ENABLED"] = "false"
		req.Env = env
	}
	if s.ens != nil {
		// Fixed addresses, and every member's in /etc/hosts: a restarted
		// container would otherwise get another address, and the JVM caches
		// names (positive 30 s, negative 10 s) - ZooKeeper then took up to 50 s
		// to re-form a quorum. With /etc/hosts a stopped member's name still
		// resolves, so nothing depends on Docker's DNS.
		nw := s.ens.Network
		req.Networks = []string{nw}
		req.NetworkAliases = map[string][]string{nw: {memberHost(s.ID)}}
		req.EndpointSettingsModifier = func(eps map[string]*network.EndpointSettings) {
			if ep := eps[nw]; ep != nil {
				ep.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: s.ip}
			}
		}
		bind := req.HostConfigModifier
		hosts := s.ens.hostsEntries()
		req.HostConfigModifier = func(hc *container.HostConfig) {
			bind(hc)
			hc.ExtraHosts = hosts
		}
	}
	return req
}

// officialEnv configures the official image's docker-entrypoint.sh.
func officialEnv() map[string]string {
	return map[string]string{
		"ZOO_TICK_TIME":              strconv.Itoa(tickTimeMs),
		"ZOO_INIT_LIMIT":             "40",
		"ZOO_SYNC_LIMIT":             "20",
		"ZOO_4LW_COMMANDS_WHITELIST": fourLetters,
		"ZOO_ADMINSERVER_ENABLED":    "false",
	}
}

var loopback = netip.MustParseAddr("127.0.0.1")

func (s *Server) terminate(t testing.TB) {
	if err := s.remove(); err != nil {
		t.Error(err)
	}
}

// remove removes s's container, if it has one.
func (s *Server) remove() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctr == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), dockerOpTime)
	defer cancel()
	var err error
	if e := s.ctr.Terminate(ctx); e != nil && !errdefs.IsNotFound(e) {
		err = fmt.Errorf("zktest: remove container of %s: %w", s, e)
	}
	s.ctr, s.running = nil, false
	return err
}

// waitReady waits until s serves: any mode standalone, leader or follower for a
// member. The error describes the container (state and log tail).
func (s *Server) waitReady(ctx context.Context, timeout time.Duration) (string, error) {
	accept := anyMode
	if s.ens != nil {
		accept = quorumMode
	}
	mode, err := waitMode(ctx, s.Addr, timeout, accept, s.exited)
	if err != nil {
		return "", fmt.Errorf("%s did not serve: %w\n%s", s, err, s.describe())
	}
	return mode, nil
}

// exited returns an error once the container is known to have stopped running.
func (s *Server) exited(ctx context.Context) error {
	s.mu.Lock()
	ctr := s.ctr
	s.mu.Unlock()
	if ctr == nil {
		return errors.New("no container")
	}
	st, err := ctr.State(ctx)
	if err != nil {
		return nil // inconclusive; the srvr deadline still bounds the wait
	}
	if !st.Running {
		return fmt.Errorf("container is %s (exit code %d)", st.Status, st.ExitCode)
	}
	return nil
}

// describe renders the container's state and the tail of its logs.
func (s *Server) describe() string {
	s.mu.Lock()
	ctr := s.ctr
	s.mu.Unlock()
	if ctr == nil {
		return "  (no container)"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var b strings.Builder
	fmt.Fprintf(&b, "  container %.12s", ctr.GetContainerID())
	if st, err := ctr.State(ctx); err == nil {
		fmt.Fprintf(&b, ": status=%s exit=%d oom=%v error=%q", st.Status, st.ExitCode, st.OOMKilled, st.Error)
	}
	b.WriteString("\n")
	rc, err := ctr.Logs(ctx)
	if err != nil {
		fmt.Fprintf(&b, "  logs unavailable: %v", err)
		return b.String()
	}
	defer rc.Close()
	logs, _ := io.ReadAll(rc)
	if len(logs) > logTailBytes {
		logs = append([]byte("..."), logs[len(logs)-logTailBytes:]...)
	}
	if len(bytes.TrimSpace(logs)) == 0 {
		b.WriteString("  logs: (empty; the hanode image logs nothing)")
	} else {
		fmt.Fprintf(&b, "  logs:\n%s", logs)
	}
	return b.String()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, err
	}
	return port, nil
}

func isPortConflict(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "port is already allocated") ||
		strings.Contains(msg, "address already in use") ||
		strings.Contains(msg, "failed to bind")
}
