package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/hanode/hanode/conf"
	"github.com/hanode/hanode/ha"
)

// zkAccess is how this node reaches ZooKeeper (issue 18): the shared
// secrets and TLS, from the configuration.
func zkAccess(cfg *conf.Config) (ha.Access, error) {
	a := ha.Access{Secrets: cfg.Secrets(), KeepOpen: cfg.ZKACLOpen}
	if cfg.TLS() {
		t, err := ha.LoadTLS(cfg.ZKTLSCA, cfg.ZKTLSCert, cfg.ZKTLSKey)
		if err != nil {
			return ha.Access{}, fmt.Errorf("%w: ZK_TLS_CA, ZK_TLS_CERT, ZK_TLS_KEY: %v", conf.ErrInvalid, err)
		}
		a.TLS = t
	}
	return a, nil
}

// fingerprints names the secrets of a for a log, without revealing them.
func fingerprints(a ha.Access) []string {
	fps := make([]string, len(a.Secrets))
	for i, s := range a.Secrets {
		fps[i] = ha.Fingerprint(s)
	}
	return fps
}

// withAccessHint adds the fix to a refusal for want of the right secret.
func withAccessHint(err error) error {
	if !errors.Is(err, ha.ErrAccessDenied) {
		return err
	}
	return fmt.Errorf("%w; set CLUSTER_SHARED_SECRET_FILE to the file holding the cluster's secret, the same on every node "+
		"(during a rotation, the other secret in CLUSTER_SHARED_SECRET_OLD_FILE; README, \"Protecting the ZooKeeper tree\")", err)
}

// accessFlags are a tool's (status, watch) flags for a protected tree.
type accessFlags struct{ secretFile, ca, cert, key string }

// bind registers the flags on fs.
func (f *accessFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&f.secretFile, "secret-file", "", "file holding the cluster's shared secret (CLUSTER_SHARED_SECRET_FILE), for a protected tree")
	fs.StringVar(&f.ca, "tls-ca", "", "CA of ZooKeeper's secure client port (ZK_TLS_CA): connect over TLS")
	fs.StringVar(&f.cert, "tls-cert", "", "client certificate for ZooKeeper over TLS (ZK_TLS_CERT)")
	fs.StringVar(&f.key, "tls-key", "", "key of --tls-cert (ZK_TLS_KEY)")
}

// access builds the tool's access from its flags.
func (f *accessFlags) access() (ha.Access, error) {
	var a ha.Access
	if f.secretFile != "" {
		data, err := os.ReadFile(f.secretFile)
		if err != nil {
			return a, usageError{fmt.Errorf("--secret-file: %w", err)}
		}
		secret := strings.TrimSpace(string(data))
		if secret == "" {
			return a, usageError{fmt.Errorf("--secret-file: %s is empty", f.secretFile)}
		}
		a.Secrets = [][]byte{[]byte(secret)}
	}
	if f.ca != "" || f.cert != "" || f.key != "" {
		t, err := ha.LoadTLS(f.ca, f.cert, f.key)
		if err != nil {
			return a, usageError{err}
		}
		a.TLS = t
	}
	return a, nil
}
