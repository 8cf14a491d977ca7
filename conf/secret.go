package conf

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Access to ZooKeeper (issue 18): the cluster's shared secret, from which
// hanode derives the digest ACL of every znode it creates, and TLS to
// ZooKeeper's secure client port.
const (
	KeySecret        = "CLUSTER_SHARED_SECRET"
	KeySecretFile    = "CLUSTER_SHARED_SECRET_FILE"
	KeySecretOld     = "CLUSTER_SHARED_SECRET_OLD"
	KeySecretOldFile = "CLUSTER_SHARED_SECRET_OLD_FILE"
	KeyZKACLOpen     = "ZK_ACL_OPEN"
	KeyZKTLSCA       = "ZK_TLS_CA"
	KeyZKTLSCert     = "ZK_TLS_CERT"
	KeyZKTLSKey      = "ZK_TLS_KEY"
	// The admin API's bearer token (issue 18).
	KeyAdminToken     = "ADMIN_TOKEN"
	KeyAdminTokenFile = "ADMIN_TOKEN_FILE"
)

// AdminToken is the admin API's bearer token, "" when none is set (the
// API is off).
func (c *Config) AdminToken() string { return string(c.adminToken) }

// minSecretLen is the length below which a secret is warned about: the
// digest ACL is only as strong as the secret is hard to guess.
const minSecretLen = 16

// hiddenValue stands for a secret's value wherever a value is printed.
const hiddenValue = "(hidden)"

// hidden is a secret's bytes; it prints as hiddenValue, so a Config
// printed whole (%v, %+v) shows no secret.
type hidden []byte

func (hidden) String() string   { return hiddenValue }
func (hidden) GoString() string { return hiddenValue }

// Secrets returns the shared secrets: CLUSTER_SHARED_SECRET first, then
// CLUSTER_SHARED_SECRET_OLD if set; none without a secret.
func (c *Config) Secrets() [][]byte {
	out := make([][]byte, 0, len(c.secrets))
	for _, s := range c.secrets {
		out = append(out, []byte(s))
	}
	return out
}

// TLS reports whether ZooKeeper is reached over TLS (any ZK_TLS_* set).
func (c *Config) TLS() bool { return c.ZKTLSCA != "" || c.ZKTLSCert != "" || c.ZKTLSKey != "" }

// isSecretKey reports whether a value of variable name must never be
// printed: a secret key, spelt right, with the HANODE_ prefix, or one typo
// away.
func isSecretKey(name string) bool {
	name = strings.TrimPrefix(name, EnvPrefix)
	if name == KeySecret || name == KeySecretOld || name == KeyAdminToken {
		return true
	}
	key, _, near := resembles(name)
	return near && (key == KeySecret || key == KeySecretOld || key == KeyAdminToken)
}

// access checks the keys of access to ZooKeeper.
func (v *validation) access(c *Config) {
	warn := func(key, value, source, msg string) {
		c.notices = append(c.notices, Notice{Kind: NoticeWarning, Key: key, Value: value, Source: source, Msg: msg})
	}
	c.secretFiles = map[string]string{KeySecretFile: v.get(KeySecretFile).Value, KeySecretOldFile: v.get(KeySecretOldFile).Value}
	current := v.secret(KeySecret, KeySecretFile, warn)
	old := v.secret(KeySecretOld, KeySecretOldFile, warn)
	switch {
	case current != nil:
		c.secrets = append(c.secrets, current)
		if old != nil {
			if string(old) == string(current) {
				s := v.get(v.secretKeySet(KeySecretOld, KeySecretOldFile))
				warn(s.Key, shownSecretSetting(s), s.Source, "the same secret as CLUSTER_SHARED_SECRET: nothing is being rotated")
			} else {
				c.secrets = append(c.secrets, old)
			}
		}
	case old != nil:
		v.fail(v.secretKeySet(KeySecretOld, KeySecretOldFile), "the old secret of a rotation needs the new one: set CLUSTER_SHARED_SECRET_FILE too")
	}
	if s := v.get(KeyZKACLOpen); s.Value != "" {
		open, err := strconv.ParseBool(strings.ToLower(s.Value))
		switch strings.ToLower(s.Value) {
		case "yes":
			open, err = true, nil
		case "no":
			open, err = false, nil
		}
		switch {
		case err != nil:
			v.fail(KeyZKACLOpen, "must be yes or no")
		case open && len(c.secrets) == 0:
			v.fail(KeyZKACLOpen, "keeps the tree open next to a secret, but no CLUSTER_SHARED_SECRET_FILE is set")
		case open:
			warn(KeyZKACLOpen, s.Value, s.Source, "the ZooKeeper tree stays open to every client: only for the rolling "+
				"change that introduces the secret (README, \"Protecting the ZooKeeper tree\"); remove it once every node has the secret")
		}
		c.ZKACLOpen = open
	}
	c.adminToken = v.secret(KeyAdminToken, KeyAdminTokenFile, warn)
	c.secretFiles[KeyAdminTokenFile] = v.get(KeyAdminTokenFile).Value
	c.ZKTLSCA = v.readable(KeyZKTLSCA)
	c.ZKTLSCert = v.readable(KeyZKTLSCert)
	c.ZKTLSKey = v.readable(KeyZKTLSKey)
	if (c.ZKTLSCert == "") != (c.ZKTLSKey == "") {
		missing, have := KeyZKTLSKey, KeyZKTLSCert
		if c.ZKTLSCert == "" {
			missing, have = KeyZKTLSCert, KeyZKTLSKey
		}
		v.fail(missing, fmt.Sprintf("required with %s: a client certificate and its key go together", have))
	}
	if c.ZKTLSKey != "" {
		if msg := exposed(c.ZKTLSKey); msg != "" {
			s := v.get(KeyZKTLSKey)
			warn(KeyZKTLSKey, s.Value, s.Source, msg)
		}
	}
	if !c.HA() && (len(c.secrets) > 0 || c.TLS()) {
		key := KeyZKTLSCA
		if len(c.secrets) > 0 {
			key = v.secretKeySet(KeySecret, KeySecretFile)
		}
		s := v.get(key)
		warn(key, shownSecretSetting(s), s.Source, "not used without an HA group: a standalone node does not use ZooKeeper")
	}
}

// secretKeySet is whichever of a secret's two keys is set (the file's
// when neither is).
func (v *validation) secretKeySet(key, fileKey string) string {
	if v.get(key).Value != "" {
		return key
	}
	return fileKey
}

// shownSecretSetting is a setting's value as a notice may show it.
func shownSecretSetting(s Setting) string {
	if isSecretKey(s.Key) && s.Value != "" {
		return hiddenValue
	}
	return s.Value
}

// secret reads one secret from key or from the file fileKey names (exactly
// one of them), nil when neither is set.
func (v *validation) secret(key, fileKey string, warn func(key, value, source, msg string)) hidden {
	direct, file := v.get(key), v.get(fileKey)
	switch {
	case direct.Value != "" && file.Value != "":
		v.fail(key, fmt.Sprintf("set either %s or %s (from %s), not both", key, fileKey, file.Source))
		return nil
	case file.Value != "":
		data, err := os.ReadFile(file.Value)
		if err != nil {
			v.fail(fileKey, fmt.Sprintf("cannot read the secret: %v", err))
			return nil
		}
		secret := strings.TrimSpace(string(data))
		if secret == "" {
			v.fail(fileKey, "the file is empty: it must hold the secret")
			return nil
		}
		if msg := exposed(file.Value); msg != "" {
			warn(fileKey, file.Value, file.Source, msg)
		}
		if len(secret) < minSecretLen {
			warn(fileKey, file.Value, file.Source, fmt.Sprintf("the secret is shorter than %d bytes: easy to guess", minSecretLen))
		}
		return hidden(secret)
	case direct.Value != "":
		if path := envFileOf(direct.Source); path != "" {
			if msg := exposed(path); msg != "" {
				warn(key, hiddenValue, direct.Source, "the env file holding the secret: "+msg+
					"; or better, move the secret to a file of its own (CLUSTER_SHARED_SECRET_FILE)")
			}
		}
		if len(direct.Value) < minSecretLen {
			warn(key, hiddenValue, direct.Source, fmt.Sprintf("the secret is shorter than %d bytes: easy to guess", minSecretLen))
		}
		return hidden(direct.Value)
	}
	return nil
}

// envFileOf is the file of a source "path:line", "" for the environment,
// a flag or a default.
func envFileOf(source string) string {
	if source == "" || source == "default" || strings.HasPrefix(source, "env ") || strings.HasPrefix(source, "flag ") {
		return ""
	}
	if i := strings.LastIndexByte(source, ':'); i > 0 {
		if _, err := strconv.Atoi(source[i+1:]); err == nil {
			return source[:i]
		}
	}
	return source
}

// exposed says how a file holding a secret is readable by more than its
// owner, or "" when it is not (or cannot be told).
func exposed(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	if m := fi.Mode().Perm(); m&0o044 != 0 {
		return fmt.Sprintf("%s holds a secret and is readable by group or others (mode %04o): chmod 600 %s", path, m, path)
	}
	return ""
}

// readable checks that the file a key names can be read; "" when unset.
func (v *validation) readable(key string) string {
	s := v.get(key)
	if s.Value == "" {
		return ""
	}
	f, err := os.Open(s.Value)
	if err != nil {
		v.fail(key, fmt.Sprintf("cannot read: %v", err))
		return s.Value
	}
	_ = f.Close()
	return s.Value
}

// accessValue is the value Settings prints for an access key: never a
// secret.
func (c *Config) accessValue(key string) (string, bool) {
	switch key {
	case KeySecret, KeySecretOld, KeyAdminToken:
		// Set or not is all check-config says; which of the two forms
		// was used shows in the other key.
		if c.sources[key] != "" && c.sources[key] != "default" {
			return hiddenValue, true
		}
		return "", true
	case KeySecretFile, KeySecretOldFile, KeyAdminTokenFile:
		return c.secretFiles[key], true
	case KeyZKACLOpen:
		switch {
		case c.ZKACLOpen:
			return "yes", true
		case c.sources[key] != "":
			return "no", true
		}
		return "", true
	case KeyZKTLSCA:
		return c.ZKTLSCA, true
	case KeyZKTLSCert:
		return c.ZKTLSCert, true
	case KeyZKTLSKey:
		return c.ZKTLSKey, true
	}
	return "", false
}
