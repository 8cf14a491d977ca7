package ha

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// LoadTLS builds the client TLS configuration for ZooKeeper's secure client
// port from PEM files: caFile is the CA that signed the servers'
// certificates (empty: the system's roots); certFile and keyFile, both or
// neither, are this client's certificate and key, which ZooKeeper asks for
// unless its ssl.clientAuth is none. Servers are verified by the host
// dialed (an address of ZK or its name), which their certificates must name.
func LoadTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("ha: read the ZooKeeper CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ha: %s holds no PEM certificate", caFile)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("ha: a client certificate needs its key, and a key its certificate")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("ha: load the ZooKeeper client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// tlsHandshake runs a TLS client handshake over c within timeout; an empty
// ServerName in cfg is the host of address.
func tlsHandshake(c net.Conn, cfg *tls.Config, address string, timeout time.Duration) (net.Conn, error) {
	if cfg.ServerName == "" {
		cfg = cfg.Clone()
		cfg.ServerName, _, _ = net.SplitHostPort(address)
	}
	tc := tls.Client(c, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("ha: TLS with %s: %w", address, err)
	}
	return tc, nil
}
