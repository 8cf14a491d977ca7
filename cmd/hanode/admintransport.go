package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hanode/hanode/conf"
)

// How the admin commands (pause, resume, switchover, history) reach this
// host's node: over its admin socket (ADMIN_SOCKET, ping/socket.go), which
// needs no token, when it is set and exists, or the socket --socket names;
// else over HTTP_LISTEN with ADMIN_TOKEN_FILE's token, as before the
// socket. A socket that cannot be dialled (the node is down, or this user
// may not) falls back to HTTP: the request never reached the node.

// socketFlag is the admin commands' flag naming the socket to use.
const socketFlag = "socket"

// addSocketFlag registers --socket on an admin command.
func addSocketFlag(fs *pflag.FlagSet) {
	fs.String(socketFlag, "", "ask the node over this Unix socket, without a token and without falling back to HTTP "+
		"(default: ADMIN_SOCKET when it exists, else HTTP_LISTEN with ADMIN_TOKEN_FILE's token)")
}

// adminRequest is one request of an admin command to this host's node.
type adminRequest struct {
	method, path, body string
	// needsToken: over HTTP the request needs the bearer token (the admin
	// API); the read routes do not, and are sent without it.
	needsToken bool
}

// adminSocketHost is the placeholder host of requests sent over the admin
// socket.
const adminSocketHost = "http://admin-socket"

// adminSend sends r to this host's node and returns the answer and where it
// came from (for messages). The error, when no way worked, says each way
// tried and how to fix it.
func adminSend(ctx context.Context, cmd *cobra.Command, cfg *conf.Config, r adminRequest) (*http.Response, string, error) {
	envFile := orDefault(cfg.EnvFile, conf.DefaultEnvFile)
	if p, _ := cmd.Flags().GetString(socketFlag); p != "" {
		res, err := socketSend(ctx, p, r)
		if err != nil {
			return nil, "", fmt.Errorf("cannot reach this host's node over the admin socket %s (--socket): %w%s", p, err, socketHint(err, p))
		}
		return res, "the admin socket " + p, nil
	}
	var tried string
	switch p := cfg.AdminSocket; {
	case p == "":
		tried = "ADMIN_SOCKET is not set"
	default:
		res, err := socketSend(ctx, p, r)
		if err == nil {
			return res, "the admin socket " + p, nil
		}
		if !dialFailed(err) {
			return nil, "", fmt.Errorf("the admin socket %s (ADMIN_SOCKET): %w", p, err)
		}
		tried = fmt.Sprintf("the admin socket %s (ADMIN_SOCKET): %v%s", p, unwrapDial(err), socketHint(err, p))
	}

	token := cfg.AdminToken()
	if r.needsToken && token == "" {
		fix := fmt.Sprintf("set ADMIN_SOCKET (e.g. /run/hanode/admin.sock) in %s, restart hanode and run this as root or as hanode's user", envFile)
		if cfg.AdminSocket != "" {
			fix = "start hanode with this env file (it makes the socket) and run this as root or as hanode's user"
		}
		err := fmt.Errorf("cannot ask this host's node: %s, and there is no admin token for HTTP_LISTEN (ADMIN_TOKEN_FILE is not set in %s). "+
			"Fix: %s; or set ADMIN_TOKEN_FILE in %s to the file of the node's admin token", tried, envFile, fix, envFile)
		if cfg.AdminSocket == "" {
			return nil, "", usageError{err} // nothing configured: a restart cannot help
		}
		return nil, "", err
	}
	url := "http://" + localAddress(cfg.HTTPListen) + r.path
	req, err := http.NewRequestWithContext(ctx, r.method, url, strings.NewReader(r.body))
	if err != nil {
		return nil, "", err
	}
	if r.needsToken {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("cannot reach this host's node: %s; and at %s (HTTP_LISTEN): %w", tried, url, err)
	}
	return res, url, nil
}

// socketSend sends r over the Unix socket at path.
func socketSend(ctx context.Context, path string, r adminRequest) (*http.Response, error) {
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableKeepAlives: true, // one request per command
	}}
	req, err := http.NewRequestWithContext(ctx, r.method, adminSocketHost+r.path, strings.NewReader(r.body))
	if err != nil {
		return nil, err
	}
	return client.Do(req)
}

// dialFailed reports whether a request failed before it reached the node
// (safe to send another way).
func dialFailed(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// unwrapDial is a dial error without the URL around it.
func unwrapDial(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		return op
	}
	return err
}

// socketHint says what to do about a socket that could not be dialled.
func socketHint(err error, path string) string {
	switch {
	case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
		return " (run this as root or as the node's user, e.g. with sudo)"
	case errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf(" (is hanode running, with ADMIN_SOCKET=%s?)", path)
	}
	return ""
}

// adminCall posts body to path on this host's node and prints its answer.
func adminCall(cmd *cobra.Command, cfg *conf.Config, path, body string) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), 15*time.Second)
	defer cancel()
	res, where, err := adminSend(ctx, cmd, cfg, adminRequest{method: http.MethodPost, path: path, body: body, needsToken: true})
	if err != nil {
		return err
	}
	defer res.Body.Close()
	var answer struct{ Result, Error string }
	b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if err := json.Unmarshal(b, &answer); err != nil {
		return fmt.Errorf("%s answered %s: %q", where, res.Status, b)
	}
	if res.StatusCode != http.StatusOK {
		return errors.New(answer.Error)
	}
	_, err = fmt.Fprintln(cmd.OutOrStdout(), answer.Result)
	return err
}
