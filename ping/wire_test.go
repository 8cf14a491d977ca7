package ping

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/hanode/hanode/ha"
)

// startServe runs serve(h) with lim on a loopback port until the test ends,
// then requires it to stop cleanly.
func startServe(t *testing.T, h http.Handler, lim limits, log *zap.Logger) string {
	t.Helper()
	ln, err := Listen(t.Context(), "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, h, log, time.Second, lim) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(5 * time.Second):
			t.Error("serve did not stop within 5 s")
		}
	})
	return ln.Addr().String()
}

// startReference serves h the way Serve did before the wire path: net/http
// alone, with Serve's settings.
func startReference(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// exchange writes raw on a new connection, closes the sending side and
// returns all the server wrote until it closed.
func exchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	_, err = io.WriteString(c, raw)
	require.NoError(t, err)
	require.NoError(t, c.(*net.TCPConn).CloseWrite())
	b, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset by peer") {
		require.NoError(t, err)
	}
	return string(b)
}

var dateHeader = regexp.MustCompile(`(?m)^Date: [^\r]*\r$`)

// undated replaces the Date header's value, the one thing two answers a
// second apart may not share.
func undated(s string) string { return dateHeader.ReplaceAllString(s, "Date: X\r") }

// rawRequests are requests as balancers, people and attackers write them.
// The wire path must answer each exactly as net/http and echo did.
var rawRequests = []struct{ name, raw string }{
	{"ping", "GET /v2/ping/net/1/ HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"se", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"HEAD ping", "HEAD /v2/ping/net/1/ HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"HEAD se", "HEAD /v2/ping/net/1/se/ HTTP/1.1\r\nHost: 10.0.0.1:9100\r\n\r\n"},
	{"query", "GET /v2/ping/net/1/se/?verbose=1&x=%zz HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"empty query", "GET /v2/ping/net/1/se/? HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"query with space", "GET /v2/ping/net/1/se/?a b HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"fragment", "GET /v2/ping/net/1/se/#top HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"connection close", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"},
	{"connection Close", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\nconnection: Close\r\n\r\n"},
	{"connection keep-alive", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\nConnection: Keep-Alive\r\n\r\n"},
	{"connection list", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n"},
	{"two connection headers", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"},
	{"balancer headers", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nhost: lb\r\nUser-Agent: HAProxy\r\nAccept: */*\r\nX-Forwarded-For: 10.1.2.3\r\n\r\n"},
	{"header value with tab", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost:\tx \r\nX-A: a\tb\r\n\r\n"},
	{"IPv6 host", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: [::1]:9100\r\n\r\n"},
	{"empty host", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost:\r\n\r\n"},
	{"odd host", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: a b\r\n\r\n"},
	{"host with userinfo", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: u@x\r\n\r\n"},
	{"two hosts", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"},
	{"no host", "GET /v2/ping/net/1/se/ HTTP/1.1\r\n\r\n"},
	{"HTTP/1.0", "GET /v2/ping/net/1/se/ HTTP/1.0\r\n\r\n"},
	{"HTTP/1.0 keep-alive", "GET /v2/ping/net/1/se/ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"},
	{"HTTP/1.0 with host", "GET /v2/ping/net/1/ HTTP/1.0\r\nHost: x\r\nUser-Agent: HAProxy\r\n\r\n"},
	{"HTTP/1.0 close", "HEAD /v2/ping/net/1/se/ HTTP/1.0\r\nConnection: close\r\n\r\n"},
	{"HTTP/1.0 two hosts", "GET /v2/ping/net/1/se/ HTTP/1.0\r\nHost: x\r\nHost: y\r\n\r\n"},
	{"HTTP/1.0 pipelined, kept alive", "GET /v2/ping/net/1/se/ HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n" +
		"HEAD /v2/ping/net/1/ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" +
		"GET /v2/ping/net/1/ HTTP/1.0\r\n\r\n" +
		"GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"HTTP/1.0 then 1.1", "GET /v2/ping/net/1/se/ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" +
		"GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"HTTP/1.0 status", "GET /v2/status HTTP/1.0\r\n\r\n"},
	{"HTTP/1.2", "GET /v2/ping/net/1/se/ HTTP/1.2\r\nHost: x\r\n\r\n"},
	{"HTTP/2.0", "GET /v2/ping/net/1/se/ HTTP/2.0\r\nHost: x\r\n\r\n"},
	{"lowercase version", "GET /v2/ping/net/1/se/ http/1.1\r\nHost: x\r\n\r\n"},
	{"h2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"},
	{"bare LF", "GET /v2/ping/net/1/se/ HTTP/1.1\nHost: x\n\n"},
	{"mixed line ends", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\n\r\n"},
	{"leading empty line", "\r\nGET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"folded header", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n"},
	{"space in header name", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\nX A: a\r\n\r\n"},
	{"space before colon", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost : x\r\n\r\n"},
	{"no colon", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\nnonsense\r\n\r\n"},
	{"empty header name", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\n: a\r\n\r\n"},
	{"control byte", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n"},
	{"bare CR in value", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n"},
	{"obs-text", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\nX-A: caf\xe9\r\n\r\n"},
	{"content-length 0", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"},
	{"body", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"},
	{"bad content-length", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"},
	{"chunked", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
	{"expect continue", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n"},
	{"expect other", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n"},
	{"upgrade", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"},
	{"lowercase method", "get /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"POST", "POST /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"},
	{"OPTIONS", "OPTIONS /v2/ping/net/1/ HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"DELETE", "DELETE /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"double space", "GET  /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"trailing space", "GET /v2/ping/net/1/se/ HTTP/1.1 \r\nHost: x\r\n\r\n"},
	{"absolute form", "GET http://x/v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"asterisk", "GET * HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"escaped netid", "GET /v2/ping/net/%31/se/ HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"bad escape", "GET /v2/ping/net/%ZZ/se/ HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"escaped slash", "GET /v2/ping/net/1%2Fse/ HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"other net", "GET /v2/ping/net/2/se/ HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"longer netid", "GET /v2/ping/net/11/se/ HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"empty netid", "GET /v2/ping/net//se/ HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"no trailing slash", "GET /v2/ping/net/1/se HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"sub-route", "GET /v2/ping/net/1/se/x HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"dot segment", "GET /v2/ping/net/1/./se/ HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"upper case path", "GET /V2/PING/NET/1/SE/ HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"status", "GET /v2/status HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"root", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"long header", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("p", 6000) + "\r\n\r\n"},
	{"header over the limit", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("p", 80<<10) + "\r\n\r\n"},
	{"request line over the wire limit", "GET /v2/ping/net/1/se/?" + strings.Repeat("q", 5000) + " HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"pipelined pings", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\n\r\n" +
		"HEAD /v2/ping/net/1/ HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /v2/ping/net/1/ HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"pipelined, status in the middle", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /v2/status HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /v2/ping/net/1/ HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"pipelined, close in the middle", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" +
		"GET /v2/ping/net/1/ HTTP/1.1\r\nHost: x\r\n\r\n"},
	{"pipelined, bad request last", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /v2/ping/net/1/se/ HTTP/1.1\r\n\r\n"},
	{"incomplete request", "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\n"},
	{"incomplete request line", "GET /v2/ping/net/1/se/"},
	{"nothing", ""},
	{"garbage", "\x00\x01\x02\r\n\r\n"},
}

func TestWireAnswersAsNetHTTPAndEchoDid(t *testing.T) {
	for _, phase := range []ha.Phase{ha.PhaseActive, ha.PhaseStandby} {
		h := New(testID, fixed(phase), nil)
		wire := startServe(t, h, testLimits(), nil)
		ref := startReference(t, h.echo)
		for _, rq := range rawRequests {
			t.Run(string(phase)+" "+rq.name, func(t *testing.T) {
				want := undated(exchange(t, ref, rq.raw))
				got := undated(exchange(t, wire, rq.raw))
				assert.Equal(t, want, got)
			})
		}
	}
}

func TestWireAnswersABalancerProbe(t *testing.T) {
	h := New(testID, fixed(ha.PhaseStandby), nil)
	addr := startServe(t, h, testLimits(), nil)
	got := exchange(t, addr, "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\n\r\n")
	assert.Equal(t, "HTTP/1.1 503 Service Unavailable\r\n"+
		"Cache-Control: no-store\r\n"+
		"Content-Length: 7\r\n"+
		"Content-Type: text/plain; charset=UTF-8\r\n"+
		"Date: X\r\n\r\n"+
		"standby", undated(got))
	assert.Regexp(t, `\r\nDate: [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT\r\n`, got)
}

func TestWireKeepsAConnectionAliveAcrossRequests(t *testing.T) {
	var phase atomic.Value
	phase.Store(ha.PhaseStandby)
	h := New(testID, ha.StateFunc(func() ha.State { return ha.State{Phase: phase.Load().(ha.Phase)} }), nil)
	addr := startServe(t, h, testLimits(), nil)

	var conns atomic.Int32
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			conns.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, network, a)
		},
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	for i := range 50 {
		p := ha.PhaseStandby
		if i%2 == 1 {
			p = ha.PhaseActive
		}
		phase.Store(p)
		code, body := get(t, c, "http://"+addr+"/v2/ping/net/1/se/")
		if p == ha.PhaseActive {
			assert.Equal(t, http.StatusOK, code)
			assert.Equal(t, "ok", body)
		} else {
			assert.Equal(t, http.StatusServiceUnavailable, code)
			assert.Equal(t, "standby", body)
		}
	}
	assert.Equal(t, int32(1), conns.Load(), "one keep-alive connection served all")
}

func TestWireReadsARequestSentByteByByte(t *testing.T) {
	h := New(testID, fixed(ha.PhaseActive), nil)
	addr := startServe(t, h, testLimits(), nil)
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	req := "GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("p", 1500) + "\r\nConnection: close\r\n\r\n"
	for i := range len(req) {
		_, err := c.Write([]byte{req[i]})
		require.NoError(t, err)
	}
	b, err := io.ReadAll(c)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(b), "HTTP/1.1 200 OK\r\n"), "%q", b)
	assert.True(t, strings.HasSuffix(string(b), "Connection: close\r\n\r\nok"), "%q", b)
}

func TestWireLeavesOtherHandlersToNetHTTP(t *testing.T) {
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello "+r.URL.Path)
	})
	addr := startServe(t, hello, testLimits(), nil)
	c := &http.Client{Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	for range 3 {
		code, body := get(t, c, "http://"+addr+"/v2/ping/net/1/se/")
		assert.Equal(t, http.StatusOK, code)
		assert.Equal(t, "hello /v2/ping/net/1/se/", body)
	}
}

// TestWirePathAnswersPingsItselfAndHandsOverTheRest drives one connection
// through the wire path alone: pings are answered without net/http, and the
// first other request reaches net/http's listener with its bytes intact.
func TestWirePathAnswersPingsItselfAndHandsOverTheRest(t *testing.T) {
	h := New(testID, fixed(ha.PhaseActive), nil)
	tr := newTracker(testLimits(), zap.NewNop())
	handoff := newHandoffListener(&net.TCPAddr{})
	defer handoff.Close()
	ws := &wireServer{route: h.route, h: h.h, tr: tr, handoff: handoff, log: zap.NewNop()}
	server, client := net.Pipe()
	defer client.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		ws.serveConn(tr.add(server, time.Now()))
	}()
	require.NoError(t, client.SetDeadline(time.Now().Add(5*time.Second)))

	buf := make([]byte, 1024)
	for _, req := range []string{
		"GET /v2/ping/net/1/se/ HTTP/1.1\r\nHost: x\r\n\r\n",
		"HEAD /v2/ping/net/1/ HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		_, err := io.WriteString(client, req)
		require.NoError(t, err)
		n, err := client.Read(buf)
		require.NoError(t, err)
		assert.True(t, strings.HasPrefix(string(buf[:n]), "HTTP/1.1 200 OK\r\n"), "%q", buf[:n])
	}
	assert.Equal(t, 1, tr.open())

	status := "GET /v2/status HTTP/1.1\r\nHost: x\r\n\r\n"
	_, err := io.WriteString(client, status)
	require.NoError(t, err)
	c, err := handoff.Accept()
	require.NoError(t, err)
	n, err := c.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, status, string(buf[:n]), "net/http reads the request the wire path did not answer")
	<-done // the wire path is done with the connection
	assert.Equal(t, 1, tr.open(), "still tracked, now as net/http's")
}
