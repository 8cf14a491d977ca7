package ping

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hanode/hanode/ha"
)

// get fetches url and returns status and body.
func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	res, err := c.Get(url)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(b)
}

// waitServe waits for Serve's result, failing if it takes longer than limit.
func waitServe(t *testing.T, done <-chan error, limit time.Duration) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		t.Fatalf("Serve did not return within %v", limit)
		return nil
	}
}

func TestServeAnswersOverASocketAndStopsWithContext(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	log := zap.New(core)

	ln, err := Listen(t.Context(), "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NotEqual(t, "127.0.0.1:0", addr, "the bound port is known before serving")

	var phase atomic.Value
	phase.Store(ha.PhaseStandby)
	src := ha.StateFunc(func() ha.State { return ha.State{Phase: phase.Load().(ha.Phase)} })

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, New(testID, src, log), log) }()

	c := &http.Client{Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	code, body := get(t, c, "http://"+addr+"/v2/ping/net/1/se/")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, "standby", body)

	phase.Store(ha.PhaseActive)
	code, body = get(t, c, "http://"+addr+"/v2/ping/net/1/se/")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok", body)

	res, err := c.Head("http://" + addr + "/v2/ping/net/1/")
	require.NoError(t, err)
	require.NoError(t, res.Body.Close())
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, int64(2), res.ContentLength, "HEAD announces the GET body's length")

	// The client keeps an idle keep-alive connection open: shutdown must not
	// wait for it.
	cancel()
	require.NoError(t, waitServe(t, done, ShutdownTimeout+time.Second))

	_, err = net.DialTimeout("tcp", addr, time.Second)
	assert.Error(t, err, "the listener is closed")

	assert.Equal(t, 1, logs.FilterMessage("ping: serving").FilterField(zap.String("addr", addr)).Len())
	assert.Equal(t, 1, logs.FilterMessage("ping: stopped").Len())
}

func TestServeReturnsNilWhenContextAlreadyDone(t *testing.T) {
	ln, err := Listen(t.Context(), "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, http.NotFoundHandler(), nil) }()
	require.NoError(t, waitServe(t, done, ShutdownTimeout+time.Second))
	_, err = ln.Accept()
	assert.Error(t, err, "Serve closed the listener")
}

func TestServeFailsOnAClosedListener(t *testing.T) {
	ln, err := Listen(t.Context(), "127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, ln.Close())
	err = Serve(t.Context(), ln, http.NotFoundHandler(), nil)
	require.Error(t, err)
	assert.ErrorIs(t, err, net.ErrClosed)
	assert.Contains(t, err.Error(), "ping: serve ")
}

func TestListenReportsBadAddress(t *testing.T) {
	_, err := Listen(t.Context(), "127.0.0.1:notaport")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ping: listen 127.0.0.1:notaport: ")
}

func TestShutdownIsBoundedWhenARequestHangs(t *testing.T) {
	ln, err := Listen(t.Context(), "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()

	entered := make(chan struct{})
	var once sync.Once
	release := make(chan struct{})
	defer close(release)
	hang := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(entered) })
		<-release
	})

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	const grace = 50 * time.Millisecond
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, hang, nil, grace, defaultLimits()) }()

	c := &http.Client{Timeout: 5 * time.Second}
	reqDone := make(chan error, 1)
	go func() {
		res, err := c.Get("http://" + addr + "/")
		if err == nil {
			_ = res.Body.Close()
		}
		reqDone <- err
	}()
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("request never reached the handler")
	}

	cancel()
	err = waitServe(t, done, grace+2*time.Second)
	require.Error(t, err)
	assert.True(t, errors.Is(err, context.DeadlineExceeded), "got %v", err)

	select {
	case err := <-reqDone:
		assert.Error(t, err, "the hung connection was closed")
	case <-time.After(5 * time.Second):
		t.Fatal("client still waiting after Serve returned")
	}
}
