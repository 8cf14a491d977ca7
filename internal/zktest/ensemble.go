package zktest

// Ensembles: N QuorumPeerMain servers on a private docker network with fixed
// member addresses, reachable from the host through their client ports.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	tcnetwork "github.com/testcontainers/testcontainers-go/network"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"

	"github.com/hanode/hanode/internal/testwait"
)

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
	RequireDocker(t)
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
	var leader *Server
	var seen []string
	err := testwait.Poll(timeout, pollInterval, func() bool {
		seen = seen[:0]
		for _, s := range e.Servers {
			if !s.Running() {
				seen = append(seen, fmt.Sprintf("zk%d stopped", s.ID))
				continue
			}
			mode, err := Mode(s.Addr, probeTimeout)
			if err == nil && mode == "leader" {
				leader = s
				return true
			}
			seen = append(seen, fmt.Sprintf("zk%d %s", s.ID, observation(mode, err)))
		}
		return false
	})
	if err != nil {
		t.Fatalf("zktest: no leader within %v: %s", timeout, strings.Join(seen, ", "))
	}
	return leader
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
	b.WriteString("standaloneEnabled=false\nadmin.enableServer=false\nmaxClientCnxns=0\n")
	fmt.Fprintf(&b, "4lw.commands.whitelist=%s\n", fourLetters)
	for _, l := range e.serverLines() {
		b.WriteString(l + "\n")
	}
	return b.String()
}
