package ha

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/zap"
)

// Access says how a session proves itself to ZooKeeper and how it protects
// what it creates. The zero value is an open tree over plain TCP.
//
// With Secrets, the session authenticates with a digest credential derived
// from each secret (DigestUser and DigestPassword: the secret itself never
// reaches ZooKeeper), creates every znode, the missing parents of its root
// included, with a digest ACL granting everything to each credential and
// nothing to anyone else, and, once per process, converts the tree under its
// root to exactly that ACL. Before any election may run on a new client, it
// reads its root: ZooKeeper's refusal (a secret that does not match the
// tree's) ends the session with ErrAccessDenied. A wrong password is
// accepted by ZooKeeper's AddAuth and only fails later, so the read is the
// only proof.
//
// Znodes above the root that hanode did not create (ZooKeeper's "/", a
// chroot an operator made) are left as they are.
type Access struct {
	// Secrets are the cluster's shared secrets: the current one first and,
	// while a rotation is under way, the other (README, "Rotating the
	// secret"). Every znode gets an ACL entry for each. Empty: an open tree.
	Secrets [][]byte
	// KeepOpen adds world:anyone to every ACL next to the secrets' and
	// converts nothing: the tree stays usable by nodes that do not have the
	// secret yet, while a secret is introduced one node at a time.
	KeepOpen bool
	// TLS, when set, makes every connection to ZooKeeper TLS (ZooKeeper's
	// secureClientPort). An empty ServerName is the host dialed.
	TLS *tls.Config
}

// DigestUser is the user of every credential derived from a secret.
const DigestUser = "hanode"

// digestContext separates this use of the secret from any other: a secret
// shared for something else one day derives another password.
const digestContext = "hanode-zk-acl-v1"

// DigestPassword derives the digest password of a shared secret:
// hex(HMAC-SHA256(secret, "hanode-zk-acl-v1")).
func DigestPassword(secret []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(digestContext))
	return hex.EncodeToString(mac.Sum(nil))
}

// Fingerprint names a secret without revealing it: the first 8 characters
// of the ZooKeeper digest its credential shows in an ACL (zkCli's getAcl
// prints digest:hanode:<that>...), so two nodes' secrets can be compared
// in their logs.
func Fingerprint(secret []byte) string {
	id := zk.DigestACL(zk.PermAll, DigestUser, DigestPassword(secret))[0].ID
	_, hash, _ := strings.Cut(id, ":")
	return hash[:8]
}

// fingerprints lists the fingerprints of a's secrets.
func (a Access) fingerprints() []string {
	out := make([]string, len(a.Secrets))
	for i, s := range a.Secrets {
		out[i] = Fingerprint(s)
	}
	return out
}

// credentials are the AddAuth payloads, one per secret.
func (a Access) credentials() [][]byte {
	out := make([][]byte, len(a.Secrets))
	for i, s := range a.Secrets {
		out[i] = []byte(DigestUser + ":" + DigestPassword(s))
	}
	return out
}

// acl is the ACL of every znode the session creates; nil without secrets.
func (a Access) acl() []zk.ACL {
	if len(a.Secrets) == 0 {
		return nil
	}
	var out []zk.ACL
	for _, s := range a.Secrets {
		out = append(out, zk.DigestACL(zk.PermAll, DigestUser, DigestPassword(s))...)
	}
	if a.KeepOpen {
		out = append(out, zk.WorldACL(zk.PermAll)...)
	}
	return out
}

// check reports what is wrong with a, or nil.
func (a Access) check() error {
	var errs []error
	for i, s := range a.Secrets {
		if len(s) == 0 {
			errs = append(errs, fmt.Errorf("secret %d is empty", i+1))
		}
	}
	if a.KeepOpen && len(a.Secrets) == 0 {
		errs = append(errs, errors.New("KeepOpen needs a secret"))
	}
	return errors.Join(errs...)
}

// sameACL reports whether two ACLs grant the same, in any order.
func sameACL(a, b []zk.ACL) bool {
	if len(a) != len(b) {
		return false
	}
	key := func(x zk.ACL) string { return fmt.Sprintf("%s\x00%s\x00%d", x.Scheme, x.ID, x.Perms) }
	ka, kb := make([]string, len(a)), make([]string, len(b))
	for i := range a {
		ka[i], kb[i] = key(a[i]), key(b[i])
	}
	slices.Sort(ka)
	slices.Sort(kb)
	return slices.Equal(ka, kb)
}

// describeACL renders an ACL for a log without the digests' hashes past
// their fingerprint.
func describeACL(acl []zk.ACL) string {
	parts := make([]string, len(acl))
	for i, a := range acl {
		id := a.ID
		if a.Scheme == "digest" {
			if user, hash, ok := strings.Cut(id, ":"); ok && len(hash) > 8 {
				id = user + ":" + hash[:8]
			}
		}
		parts[i] = fmt.Sprintf("%s:%s:%s", a.Scheme, id, perms(a.Perms))
	}
	return strings.Join(parts, ",")
}

// perms renders permissions as zkCli does (cdrwa).
func perms(p int32) string {
	var b strings.Builder
	for _, f := range []struct {
		bit int32
		c   byte
	}{{zk.PermCreate, 'c'}, {zk.PermDelete, 'd'}, {zk.PermRead, 'r'}, {zk.PermWrite, 'w'}, {zk.PermAdmin, 'a'}} {
		if p&f.bit != 0 {
			b.WriteByte(f.c)
		}
	}
	return b.String()
}

// authResult is what authorize reports to the session goroutine.
type authResult struct {
	conn      *zk.Conn
	added     bool // the credentials were added to conn
	converted bool // the tree was converted
	err       error
}

// authenticate adds the credentials to a new client and proves them before
// the session goes up (refresh): off the session goroutine, which it
// reports back to.
func (s *Session) authenticate(conn *zk.Conn) {
	if s.authBusy {
		return
	}
	s.authBusy = true
	added := s.authAdded == conn
	convert := !s.converted
	go func() {
		r := s.authorize(conn, added, convert)
		s.post(func() {
			s.authBusy = false
			if r.added {
				s.authAdded = conn
			}
			if r.converted {
				s.converted = true
			}
			switch {
			case errors.Is(r.err, ErrAccessDenied):
				s.err = r.err
			case r.err != nil:
				s.log.Warn("cannot check access to ZooKeeper yet; retrying", zap.Error(r.err))
				time.AfterFunc(250*time.Millisecond, func() { s.post(s.refresh) })
			case conn == s.conn.Load():
				s.authConn = conn
				s.refresh()
			default:
				s.refresh() // the client was replaced meanwhile
			}
		})
	}()
}

// authorize adds the credentials to conn unless added already, proves them
// by reading the root, and converts the tree if asked. go-zookeeper sends
// added credentials again on each reconnect of the same client; a new
// client (checkClient) starts without any.
func (s *Session) authorize(conn *zk.Conn, added, convert bool) authResult {
	r := authResult{conn: conn, added: added}
	a := s.cfg.Access
	if !added {
		for _, c := range a.credentials() {
			if err := conn.AddAuth("digest", c); err != nil {
				r.err = fmt.Errorf("ha: authenticate: %w", err)
				return r
			}
		}
		r.added = true
	}
	root := s.cfg.Root
	if len(a.Secrets) > 0 {
		// The root and its missing parents, with the ACL: "parents
		// included". Parents that exist are left as they are.
		if err := ensurePath(conn, root, s.cfg.ACL); err != nil {
			r.err = s.denied(err, root)
			return r
		}
	}
	if _, _, err := conn.Get(root); err != nil && !errors.Is(err, zk.ErrNoNode) {
		r.err = s.denied(fmt.Errorf("ha: read %s: %w", root, err), root)
		return r
	}
	if len(a.Secrets) == 0 || a.KeepOpen || !convert {
		return r
	}
	r.err = s.convertTree(conn)
	r.converted = r.err == nil
	return r
}

// denied turns ZooKeeper's NoAuth about znode p into the refusal, saying
// which credentials were refused; other errors pass unchanged.
func (s *Session) denied(err error, p string) error {
	if !errors.Is(err, zk.ErrNoAuth) {
		return err
	}
	if len(s.cfg.Access.Secrets) == 0 {
		return fmt.Errorf("%w: znode %s is protected by an ACL and this node has no shared secret", ErrAccessDenied, p)
	}
	return fmt.Errorf("%w: znode %s is protected by an ACL that none of this node's secrets matches "+
		"(digest user %s, secret fingerprints %s): the node's secret differs from the cluster's",
		ErrAccessDenied, p, DigestUser, strings.Join(s.cfg.Access.fingerprints(), ", "))
}

// convertMaxNodes bounds the walk of convertTree: hanode's tree holds
// names, groups, members and a group's state and jobs, far fewer.
const convertMaxNodes = 100_000

// convertTree sets the session's ACL on every znode under the root whose
// ACL differs (an open tree, or a rotation's old secret being dropped),
// root included, each with the ACL version read so a concurrent change is
// not overwritten blindly. Ephemeral nodes of other members are converted
// too: a member still running without the secret loses access to its own
// tree (README: the rolling change uses KeepOpen first).
func (s *Session) convertTree(conn *zk.Conn) error {
	want := s.cfg.ACL
	stack := []string{s.cfg.Root}
	visited, changed := 0, 0
	for len(stack) > 0 && visited < convertMaxNodes {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		visited++
		for attempt := 0; ; attempt++ {
			acl, st, err := conn.GetACL(p)
			if errors.Is(err, zk.ErrNoNode) {
				break
			}
			if err != nil {
				return s.denied(fmt.Errorf("ha: read the ACL of %s: %w", p, err), p)
			}
			if sameACL(acl, want) {
				break
			}
			_, err = conn.SetACL(p, want, st.Aversion)
			if errors.Is(err, zk.ErrBadVersion) && attempt < 3 {
				continue // changed meanwhile: read it again
			}
			if errors.Is(err, zk.ErrNoNode) {
				break
			}
			if err != nil {
				return s.denied(fmt.Errorf("ha: set the ACL of %s: %w", p, err), p)
			}
			changed++
			s.log.Info("znode ACL converted", zap.String("znode", p), zap.String("from", describeACL(acl)),
				zap.String("to", describeACL(want)))
			break
		}
		children, _, err := conn.Children(p)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return s.denied(fmt.Errorf("ha: list %s: %w", p, err), p)
		}
		for _, c := range children {
			stack = append(stack, strings.TrimSuffix(p, "/")+"/"+c)
		}
	}
	if len(stack) > 0 {
		s.log.Warn("stopped converting ACLs: too many znodes", zap.String("znode", s.cfg.Root),
			zap.Int("visited", visited), zap.Int("left", len(stack)))
	}
	s.log.Info("ZooKeeper tree protected by the shared secret", zap.String("znode", s.cfg.Root),
		zap.Int("znodes", visited), zap.Int("converted", changed),
		zap.Strings("fingerprints", s.cfg.Access.fingerprints()))
	return nil
}
