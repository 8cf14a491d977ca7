package conf

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// inGroup is a valid HA node's input: secrets only act in a group.
// secretFile writes a secret file with mode and returns its path.
func secretFile(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(p, []byte(content), mode))
	require.NoError(t, os.Chmod(p, mode))
	return p
}

func warnings(c *Config) string {
	var b strings.Builder
	for _, n := range c.Notices() {
		if n.Kind == NoticeWarning {
			fmt.Fprintln(&b, n)
		}
	}
	return b.String()
}

func TestSecretFromFileIsTrimmedAndNeverPrinted(t *testing.T) {
	const secret = "a-long-enough-cluster-secret"
	p := secretFile(t, secret+"\n", 0o600)
	old := secretFile(t, "the-previous-cluster-secret", 0o600)
	c, err := Validate(inGroup(set(KeySecretFile, p), set(KeySecretOldFile, old)))
	require.NoError(t, err)
	require.Equal(t, [][]byte{[]byte(secret), []byte("the-previous-cluster-secret")}, c.Secrets())
	assert.Empty(t, warnings(c))
	for _, s := range c.Settings() {
		assert.NotContains(t, s.Value, "cluster-secret", s.Key)
	}
	assert.NotContains(t, fmt.Sprintf("%v %+v %#v", c, c, c), "cluster-secret")
}

func TestSecretValueIsHiddenInSettingsErrorsAndNotices(t *testing.T) {
	const secret = "short-secret"
	c, err := Validate(inGroup(set(KeySecret, secret)))
	require.NoError(t, err)
	assert.Equal(t, [][]byte{[]byte(secret)}, c.Secrets())
	for _, s := range c.Settings() {
		if s.Key == KeySecret {
			assert.Equal(t, hiddenValue, s.Value)
		}
		assert.NotContains(t, s.Value, secret, s.Key)
	}
	assert.Contains(t, warnings(c), "shorter than 16 bytes")
	assert.NotContains(t, warnings(c), secret)

	// An error about the key, and one about a misspelling of it, hide it.
	_, err = Validate(inGroup(set(KeySecret, secret), set(KeySecretFile, "/nonexistent")))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not both")
	assert.NotContains(t, err.Error(), secret)
	fe := &FieldError{Key: "CLUSTER_SHARED_SECRT", Value: secret, Source: "f:1", Msg: "unknown key"}
	assert.NotContains(t, fe.Error(), secret)
	fe = &FieldError{Key: "HANODE_CLUSTER_SHARED_SECRET_OLD", Value: secret, Source: "env", Msg: "x"}
	assert.NotContains(t, fe.Error(), secret)
}

func TestSecretFileReadableByOthersIsWarned(t *testing.T) {
	p := secretFile(t, "a-long-enough-cluster-secret", 0o644)
	c, err := Validate(inGroup(set(KeySecretFile, p)))
	require.NoError(t, err)
	assert.Contains(t, warnings(c), "readable by group or others (mode 0644): chmod 600 "+p)

	// The env file holding the secret itself, by the source's path.
	env := secretFile(t, "CLUSTER_SHARED_SECRET=x\n", 0o640)
	c, err = Validate(inGroup(Setting{Key: KeySecret, Value: "a-long-enough-cluster-secret", Source: env + ":1"}))
	require.NoError(t, err)
	assert.Contains(t, warnings(c), "the env file holding the secret: "+env+" holds a secret and is readable by group or others (mode 0640)")

	key := secretFile(t, "key", 0o640)
	cert := secretFile(t, "cert", 0o644)
	c, err = Validate(inGroup(set(KeyZKTLSCert, cert), set(KeyZKTLSKey, key)))
	require.NoError(t, err)
	assert.True(t, c.TLS())
	assert.Contains(t, warnings(c), "ZK_TLS_KEY")
	assert.NotContains(t, warnings(c), "ZK_TLS_CERT")
}

func TestAccessKeysRefused(t *testing.T) {
	good := secretFile(t, "a-long-enough-cluster-secret", 0o600)
	cases := []struct {
		name string
		in   []Setting
		want string
	}{
		{"both forms", []Setting{set(KeySecret, "x"), set(KeySecretFile, good)}, "CLUSTER_SHARED_SECRET=(hidden) (from test): set either CLUSTER_SHARED_SECRET or CLUSTER_SHARED_SECRET_FILE"},
		{"unreadable file", []Setting{set(KeySecretFile, "/nonexistent/secret")}, "CLUSTER_SHARED_SECRET_FILE=\"/nonexistent/secret\" (from test): cannot read the secret"},
		{"empty file", []Setting{set(KeySecretFile, secretFile(t, " \n", 0o600))}, "the file is empty"},
		{"old without new", []Setting{set(KeySecretOldFile, good)}, "CLUSTER_SHARED_SECRET_OLD_FILE"},
		{"open without secret", []Setting{set(KeyZKACLOpen, "yes")}, "ZK_ACL_OPEN=\"yes\" (from test): keeps the tree open"},
		{"open not a bool", []Setting{set(KeySecretFile, good), set(KeyZKACLOpen, "maybe")}, "must be yes or no"},
		{"cert without key", []Setting{set(KeyZKTLSCert, good)}, "ZK_TLS_KEY: required with ZK_TLS_CERT"},
		{"unreadable CA", []Setting{set(KeyZKTLSCA, "/nonexistent/ca.pem")}, "ZK_TLS_CA=\"/nonexistent/ca.pem\" (from test): cannot read"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Validate(inGroup(tc.in...))
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalid)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestKeepOpenIsWarned(t *testing.T) {
	good := secretFile(t, "a-long-enough-cluster-secret", 0o600)
	c, err := Validate(inGroup(set(KeySecretFile, good), set(KeyZKACLOpen, "yes")))
	require.NoError(t, err)
	assert.True(t, c.ZKACLOpen)
	assert.Contains(t, warnings(c), "stays open to every client")
}
