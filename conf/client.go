package conf

// The client keys: what a tool that only reads the cluster (hanode status)
// needs from a node's configuration. It reads the same layers as Load (the
// env file, SERVER_CLI's -D words included, then HANODE_ variables, then
// flags) but checks only these keys, so that it works on any host that can
// reach ZooKeeper: an operator's workstation has no NAME or ROLE, and a
// node's other keys have nothing to do with reading the cluster.

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/pflag"
)

// clientKeys are the keys LoadClient reads. ZooKeeper credentials (the ACL
// work of issue 18) belong here once conf has keys for them: add the key,
// a field to Client, and its check in LoadClient; hanode status passes
// them on when it connects (cmd/hanode/statuszk.go, dialStatus).
var clientKeys = []string{KeyZK, KeyZKRoot}

// Client is the configuration of a tool that reads the cluster.
type Client struct {
	// ZK is the connect string, host:port[,host:port...][/chroot]; never
	// empty (LoadClient refuses a configuration without ZooKeeper).
	ZK string
	// ZKRoot is hanode's root znode below the chroot.
	ZKRoot string
	// EnvFile is the env file actually read, "" if none.
	EnvFile string

	sources map[string]string
}

// Source says where key's value came from ("default", "/etc/default/hanode:7",
// "env HANODE_ZK", "flag --zk"), "" for a key LoadClient does not read.
func (c *Client) Source(key string) string { return c.sources[key] }

// ZKServers returns the host:port list of the ensemble.
func (c *Client) ZKServers() []string {
	servers, _ := splitZK(c.ZK)
	var out []string
	for _, s := range strings.Split(servers, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// ZKChroot returns the chroot suffix of ZK ("/chroot"), or "" if none.
func (c *Client) ZKChroot() string {
	_, chroot := splitZK(c.ZK)
	return strings.TrimRight(chroot, "/")
}

// LoadClient reads the client keys from opts' layers, as Load reads every
// key, and checks only them. Flags count only when opts.Flags has them (the
// names BindFlags gives, --zk and --zk-root) and they were set. The error
// joins every problem, each matching ErrInvalid: lines of the env file it
// could not read, a bad ZK or ZK_ROOT, and no ZooKeeper at all.
func LoadClient(opts LoadOptions) (*Client, error) {
	lookupEnv := opts.LookupEnv
	if lookupEnv == nil {
		lookupEnv = environLookup(opts.Environ)
	}
	v := &validation{vals: map[string]Setting{}}
	set := func(key, value, source string) {
		if key, value := keep(key, value); key != "" {
			v.vals[key] = Setting{Key: key, Value: value.(string), Source: source}
		}
	}
	for _, key := range clientKeys {
		if k, _ := lookupKey(key); k.def != "" {
			set(key, k.def, "default")
		}
	}
	file, fileErr := readEnvFile(opts, lookupEnv)
	if file == nil && fileErr != nil {
		return nil, fileErr
	}
	var problems []error
	if fileErr != nil {
		problems = append(problems, unjoin(fileErr)...)
	}
	if file != nil {
		for _, key := range clientKeys {
			if s, ok := file.settings[key]; ok {
				set(key, s.Value, s.Source)
			}
		}
	}
	for _, key := range clientKeys {
		if value, ok := lookupEnv(EnvPrefix + key); ok {
			set(key, value, "env "+EnvPrefix+key)
		}
	}
	if opts.Flags != nil {
		for _, key := range clientKeys {
			if f := opts.Flags.Lookup(flagName(key)); f != nil && f.Changed {
				set(key, f.Value.String(), "flag --"+flagName(key))
			}
		}
	}

	c := &Client{ZK: v.zk(), ZKRoot: v.znodePath(KeyZKRoot), sources: map[string]string{}}
	if c.ZK == "" || c.ZK == "embedded" {
		where := "no env file was read"
		if file != nil {
			where = "not set in " + file.path
		}
		if s := v.get(KeyZK); s.Source != "" {
			where = fmt.Sprintf("%q (from %s) names none", s.Value, s.Source)
		}
		v.fail(KeyZK, fmt.Sprintf("no ZooKeeper to read: %s; pass --zk host:port[/chroot], or --env-file with a node's env file", where))
	}
	problems = append(problems, v.errs...)
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	for _, key := range clientKeys {
		c.sources[key] = v.get(key).Source
	}
	if file != nil {
		c.EnvFile = file.path
	}
	return c, nil
}

// BindClientFlags registers the client keys' flags (--zk, --zk-root) as
// BindFlags would, with the tool's own usage text.
func BindClientFlags(fs *pflag.FlagSet) {
	fs.String(flagName(KeyZK), "", "ZooKeeper host:port[,host:port...][/chroot] (env HANODE_ZK; default: ZK of the env file)")
	fs.String(flagName(KeyZKRoot), "", "hanode's root znode (env HANODE_ZK_ROOT; default: ZK_ROOT of the env file, else /hanode)")
}
