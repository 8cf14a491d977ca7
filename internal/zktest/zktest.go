// Package zktest runs real Apache ZooKeeper servers in Docker containers for
// tests: a standalone server (Start) or an ensemble of QuorumPeerMain members on
// a private Docker network (StartEnsemble).
//
// The image is $HANODE_ZK_IMAGE, else "hanode-zookeeper:3.8", which
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
// Importing the package sets TESTCONTAINERS_RYUK_DISABLED=true (the reaper image
// cannot be pulled) and TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1 (otherwise
// testcontainers dials the default gateway) unless they are already set.
package zktest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/go-zookeeper/zk"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	tcnetwork "github.com/testcontainers/testcontainers-go/network"
)

// DefaultImage is the image built by scripts/zk-image.sh (make zk-image).
const DefaultImage = "hanode-zookeeper:3.8"

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

// Image is the image tests run: $HANODE_ZK_IMAGE, else "hanode-zookeeper:3.8".
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
	// ID is the member's myid (1..n) in an ensemble, 0 for a standalone server.
	ID int

	image    string
	port     int
	ens      *Ensemble  // nil for a standalone server
	ip       netip.Addr // a member's fixed address on the ensemble's network
	logger   tclog.Logger
	testName string

	mu      sync.Mutex
	ctr     testcontainers.Container
	running bool
}

// Start starts a standalone server and waits until it serves. Its tickTime is
// 500 ms: sessions of 1 s to 10 s are honoured, and ZooKeeper, which expires
// sessions on tick boundaries, ends a dead client's session at most half a
// second after its timeout. It is terminated in t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	img := Image()
	ctx, cancel := context.WithTimeout(context.Background(), dockerOpTime+readyTimeout)
	defer cancel()
	if err := requireImage(ctx, img); err != nil {
		t.Fatal(err)
	}
	s := &Server{image: img, logger: tclog.TestLogger(t), testName: t.Name()}
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
		},
	}
	local := isLocalImage(s.image)
	switch {
	case s.ens == nil && local:
		req.Cmd = []string{"2181", dataDir, strconv.Itoa(tickTimeMs)}
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
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctr == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), dockerOpTime)
	defer cancel()
	if err := s.ctr.Terminate(ctx); err != nil && !errdefs.IsNotFound(err) {
		t.Errorf("zktest: remove container of %s: %v", s, err)
	}
	s.ctr, s.running = nil, false
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

// Ensemble is n ZooKeeper servers (QuorumPeerMain) on a private Docker network,
// with the network aliases zk1..zkN. Servers[i].ID is i+1. Each member keeps a
// fixed address on the network across Stop and Restart, and every member's
// /etc/hosts lists zk1..zkN, so a restarted member rejoins in about a second.
type Ensemble struct {
	Servers []*Server
	// Network is the name of the ensemble's Docker network.
	Network string
}

// hostsEntries maps zk1..zkN to the members' fixed addresses (ExtraHosts).
func (e *Ensemble) hostsEntries() []string {
	hosts := make([]string, len(e.Servers))
	for i, s := range e.Servers {
		hosts[i] = memberHost(s.ID) + ":" + s.ip.String()
	}
	return hosts
}

// newQuorumNetwork creates a bridge network with an explicit subnet, so that
// members can have fixed addresses (Docker allows those only on networks with a
// configured subnet). The subnet is one Docker itself picks as free: a probe
// network is created, inspected and removed, then the real one is created with
// the same subnet. It returns the network and its IPv4 subnet.
func newQuorumNetwork(ctx context.Context) (*testcontainers.DockerNetwork, netip.Prefix, error) {
	labels := tcnetwork.WithLabels(map[string]string{LabelKey: "network"})
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return nil, netip.Prefix{}, err
	}
	defer cli.Close()
	var lastErr error
	for range 3 {
		probe, err := tcnetwork.New(ctx, labels)
		if err != nil {
			return nil, netip.Prefix{}, err
		}
		insp, err := cli.NetworkInspect(ctx, probe.ID, client.NetworkInspectOptions{})
		rmErr := probe.Remove(ctx)
		if err != nil {
			return nil, netip.Prefix{}, fmt.Errorf("inspect network: %w", err)
		}
		if rmErr != nil {
			return nil, netip.Prefix{}, fmt.Errorf("remove probe network: %w", rmErr)
		}
		var cfg network.IPAMConfig
		for _, c := range insp.Network.IPAM.Config {
			if c.Subnet.Addr().Is4() {
				cfg = network.IPAMConfig{Subnet: c.Subnet.Masked(), Gateway: c.Gateway}
				break
			}
		}
		if !cfg.Subnet.IsValid() || cfg.Subnet.Bits() > 27 {
			return nil, netip.Prefix{}, fmt.Errorf("docker gave network %s no usable IPv4 subnet (%v)", probe.Name, insp.Network.IPAM.Config)
		}
		if !cfg.Gateway.IsValid() {
			cfg.Gateway = cfg.Subnet.Addr().Next()
		}
		nw, err := tcnetwork.New(ctx, labels, tcnetwork.WithIPAM(&network.IPAM{Driver: "default", Config: []network.IPAMConfig{cfg}}))
		if err == nil {
			return nw, cfg.Subnet, nil
		}
		lastErr = err // most likely another network took the subnet meanwhile
	}
	return nil, netip.Prefix{}, fmt.Errorf("create network with a fixed subnet: %w", lastErr)
}

// memberIP is the fixed address of member id: the subnet's base + 10 + id.
func memberIP(subnet netip.Prefix, id int) netip.Addr {
	a := subnet.Masked().Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += 10 + uint32(id)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// StartEnsemble starts an ensemble of n members (tickTime 500, initLimit 40,
// syncLimit 5, standaloneEnabled=false) and waits until every member answers
// srvr as leader or follower. Containers and network are removed in t.Cleanup.
func StartEnsemble(t testing.TB, n int) *Ensemble {
	t.Helper()
	if n < 1 {
		t.Fatalf("zktest: an ensemble needs at least 1 member, got %d", n)
	}
	img := Image()
	ctx, cancel := context.WithTimeout(context.Background(), 2*dockerOpTime+readyTimeout)
	defer cancel()
	if err := requireImage(ctx, img); err != nil {
		t.Fatal(err)
	}
	if n > 16 {
		t.Fatalf("zktest: at most 16 members, got %d", n)
	}
	nw, subnet, err := newQuorumNetwork(ctx)
	if err != nil {
		t.Fatalf("zktest: create docker network: %v", err)
	}
	t.Cleanup(func() {
		rmCtx, cancel := context.WithTimeout(context.Background(), dockerOpTime)
		defer cancel()
		if err := nw.Remove(rmCtx); err != nil && !errdefs.IsNotFound(err) {
			t.Errorf("zktest: remove network %s: %v", nw.Name, err)
		}
	})
	e := &Ensemble{Network: nw.Name}
	logger := tclog.TestLogger(t)
	for i := range n {
		s := &Server{ID: i + 1, image: img, ens: e, ip: memberIP(subnet, i+1), logger: logger, testName: t.Name()}
		e.Servers = append(e.Servers, s)
		t.Cleanup(func() { s.terminate(t) })
	}
	// Host ports first: every member's config lists all members.
	if err := e.each(func(s *Server) error { return s.createFresh(ctx) }); err != nil {
		t.Fatalf("zktest: start ensemble of %d (%s): %v", n, img, err)
	}
	if err := e.each(func(s *Server) error { _, err := s.waitReady(ctx, readyTimeout); return err }); err != nil {
		t.Fatalf("zktest: ensemble of %d did not form: %v", n, err)
	}
	return e
}

// ConnectString is "127.0.0.1:p1,127.0.0.1:p2,..." over all members.
func (e *Ensemble) ConnectString() string {
	addrs := make([]string, len(e.Servers))
	for i, s := range e.Servers {
		addrs[i] = s.Addr
	}
	return strings.Join(addrs, ",")
}

// Restart starts the given stopped members at once and waits until each is
// leader or follower: bringing back a lost majority one at a time cannot work,
// since Server.Restart waits for a quorum. Without arguments it restarts every
// stopped member.
func (e *Ensemble) Restart(t testing.TB, members ...*Server) {
	t.Helper()
	if len(members) == 0 {
		for _, s := range e.Servers {
			if !s.Running() {
				members = append(members, s)
			}
		}
	}
	for _, s := range members {
		if s.ens != e {
			t.Fatalf("zktest: %s is not a member of this ensemble", s)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*dockerOpTime+readyTimeout)
	defer cancel()
	sub := &Ensemble{Servers: members}
	if err := sub.each(func(s *Server) error { return s.restart(ctx, false) }); err != nil {
		t.Fatalf("zktest: restart members: %v", err)
	}
	if err := sub.each(func(s *Server) error { _, err := s.waitReady(ctx, readyTimeout); return err }); err != nil {
		t.Fatalf("zktest: %v", err)
	}
}

// Leader waits (bounded by timeout) until some running member reports Mode
// leader and returns it.
func (e *Ensemble) Leader(t testing.TB, timeout time.Duration) *Server {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var seen []string
	for {
		seen = seen[:0]
		for _, s := range e.Servers {
			if !s.Running() {
				seen = append(seen, fmt.Sprintf("zk%d stopped", s.ID))
				continue
			}
			mode, err := Mode(s.Addr, probeTimeout)
			if err == nil && mode == "leader" {
				return s
			}
			seen = append(seen, fmt.Sprintf("zk%d %s", s.ID, observation(mode, err)))
		}
		select {
		case <-deadline.C:
			t.Fatalf("zktest: no leader within %v: %s", timeout, strings.Join(seen, ", "))
		case <-tick.C:
		}
	}
}

// each runs fn for every member concurrently and joins the errors.
func (e *Ensemble) each(fn func(*Server) error) error {
	errs := make([]error, len(e.Servers))
	var wg sync.WaitGroup
	for i, s := range e.Servers {
		wg.Go(func() {
			if err := fn(s); err != nil {
				errs[i] = fmt.Errorf("zk%d: %w", s.ID, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func memberHost(id int) string { return "zk" + strconv.Itoa(id) }

func (e *Ensemble) serverLines() []string {
	lines := make([]string, len(e.Servers))
	for i, s := range e.Servers {
		lines[i] = fmt.Sprintf("server.%d=%s:2888:3888;2181", s.ID, memberHost(s.ID))
	}
	return lines
}

func (e *Ensemble) zooCfg() string {
	var b strings.Builder
	fmt.Fprintf(&b, "tickTime=%d\ninitLimit=40\nsyncLimit=20\n", tickTimeMs)
	fmt.Fprintf(&b, "dataDir=%s\nclientPort=2181\n", dataDir)
	b.WriteString("standaloneEnabled=false\nadmin.enableServer=false\n")
	fmt.Fprintf(&b, "4lw.commands.whitelist=%s\n", fourLetters)
	for _, l := range e.serverLines() {
		b.WriteString(l + "\n")
	}
	return b.String()
}

// Mode sends the four-letter word srvr to addr and returns the server's mode
// ("standalone", "leader", "follower", "observer"). A server that answers but
// does not serve gives ErrNotServing; a server that does not answer within
// timeout gives a network error.
func Mode(addr string, timeout time.Duration) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	if _, err := io.WriteString(conn, "srvr"); err != nil {
		return "", err
	}
	reply, err := io.ReadAll(conn) // the server closes after its answer
	if err != nil && len(reply) == 0 {
		return "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(reply))
	for sc.Scan() {
		if mode, ok := strings.CutPrefix(sc.Text(), "Mode:"); ok {
			return strings.TrimSpace(mode), nil
		}
	}
	text := strings.TrimSpace(string(reply))
	switch {
	case strings.Contains(text, "not currently serving"):
		return "", ErrNotServing
	case text == "":
		return "", errors.New("empty srvr reply (server starting or port not yet forwarded)")
	default:
		return "", fmt.Errorf("unexpected srvr reply %q", text)
	}
}

// WaitServing waits until the server at addr answers srvr with a Mode line (any
// mode), failing the test after timeout.
func WaitServing(t testing.TB, addr string, timeout time.Duration) string {
	t.Helper()
	return WaitMode(t, addr, timeout)
}

// WaitMode waits until the server at addr reports one of modes (any mode if
// none is given) and returns it, failing the test after timeout.
func WaitMode(t testing.TB, addr string, timeout time.Duration, modes ...string) string {
	t.Helper()
	accept := anyMode
	if len(modes) > 0 {
		accept = func(m string) bool { return slices.Contains(modes, m) }
	}
	mode, err := waitMode(context.Background(), addr, timeout, accept, nil)
	if err != nil {
		t.Fatalf("zktest: %s: %v", addr, err)
	}
	return mode
}

// WaitNotServing waits until the server at addr no longer reports leader,
// follower or standalone (it answers "not serving" or not at all), failing the
// test after timeout.
func WaitNotServing(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		mode, err := Mode(addr, probeTimeout)
		if err != nil {
			return
		}
		select {
		case <-deadline.C:
			t.Fatalf("zktest: %s still serves as %s after %v", addr, mode, timeout)
		case <-tick.C:
		}
	}
}

func anyMode(string) bool { return true }

func quorumMode(m string) bool { return m == "leader" || m == "follower" }

func observation(mode string, err error) string {
	if err != nil {
		return err.Error()
	}
	return "mode " + mode
}

// waitMode polls srvr on addr until accept(mode), for at most timeout. alive,
// if not nil, is consulted about once a second and ends the wait early with
// its error (a container that exited).
func waitMode(ctx context.Context, addr string, timeout time.Duration, accept func(string) bool, alive func(context.Context) error) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	start := time.Now()
	last := "no answer yet"
	for n := 0; ; n++ {
		mode, err := Mode(addr, probeTimeout)
		if err == nil && accept(mode) {
			return mode, nil
		}
		last = observation(mode, err)
		if alive != nil && n%10 == 9 {
			if err := alive(ctx); err != nil {
				return "", fmt.Errorf("%w (last srvr: %s)", err, last)
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("not ready after %v (last srvr: %s)", time.Since(start).Round(time.Millisecond), last)
		case <-tick.C:
		}
	}
}

// Connect opens a go-zookeeper client to servers ("host:port,host:port"),
// logging through t.Logf, waits (at most 30 s) until it has a session, and
// closes it in t.Cleanup.
func Connect(t testing.TB, servers string, sessionTimeout time.Duration) *zk.Conn {
	t.Helper()
	var addrs []string
	for a := range strings.SplitSeq(servers, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	logger := &testLogger{t: t}
	conn, _, err := zk.Connect(addrs, sessionTimeout, zk.WithLogger(logger))
	if err != nil {
		t.Fatalf("zktest: connect %s: %v", servers, err)
	}
	t.Cleanup(func() {
		conn.Close()
		logger.stop()
	})
	if err := WaitSession(conn, 30*time.Second); err != nil {
		t.Fatalf("zktest: connect %s: %v", servers, err)
	}
	return conn
}

// WaitSession waits until conn is in StateHasSession, for at most timeout.
func WaitSession(conn *zk.Conn, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		st := conn.State()
		if st == zk.StateHasSession {
			return nil
		}
		select {
		case <-deadline.C:
			return fmt.Errorf("no session after %v (state %v)", timeout, st)
		case <-tick.C:
		}
	}
}

// testLogger forwards go-zookeeper's log to t.Logf until the test cleans up
// (t.Logf after the test ends panics).
type testLogger struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (l *testLogger) Printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.done {
		l.t.Helper()
		l.t.Logf("zk: "+format, args...)
	}
}

func (l *testLogger) stop() {
	l.mu.Lock()
	l.done = true
	l.mu.Unlock()
}
