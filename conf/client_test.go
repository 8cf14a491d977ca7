package conf

import (
	"testing"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// clientFlags is hanode status's flag set after parsing args.
func clientFlags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("status", pflag.ContinueOnError)
	BindClientFlags(fs)
	fs.String("env-file", "", "")
	require.NoError(t, fs.Parse(args))
	return fs
}

// TestLoadClientReadsANodesEnvFile: a node's env file gives ZK and ZK_ROOT
// (directly or in SERVER_CLI), the environment overrides the file and a
// flag the environment, as for hanode run; keys other than the client's
// are neither needed nor checked.
func TestLoadClientReadsANodesEnvFile(t *testing.T) {
	file := "NAME=\nROLE=bogus\nACTIVE_STOP_TIMEOUT=forever\nZK=zk1:2181,zk2:2181/chroot\nZK_ROOT=/nsg\n"
	o := opts(t)
	o.EnvFile = writeFile(t, file)
	c, err := LoadClient(o)
	require.NoError(t, err)
	assert.Equal(t, []string{"zk1:2181", "zk2:2181"}, c.ZKServers())
	assert.Equal(t, "/chroot", c.ZKChroot())
	assert.Equal(t, "/nsg", c.ZKRoot)
	assert.Equal(t, o.EnvFile, c.EnvFile)
	assert.Equal(t, o.EnvFile+":4", c.Source(KeyZK))

	o.Environ = []string{"HANODE_ZK=env:2181"}
	o.Flags = clientFlags(t, "--zk-root", "/flag")
	c, err = LoadClient(o)
	require.NoError(t, err)
	assert.Equal(t, "env:2181", c.ZK)
	assert.Equal(t, "env HANODE_ZK", c.Source(KeyZK))
	assert.Equal(t, "/flag", c.ZKRoot)
	assert.Equal(t, "flag --zk-root", c.Source(KeyZKRoot))

	o = opts(t)
	o.DefaultEnvFile = writeFile(t, `SERVER_CLI="-DZK=nsg:2181 -DNAME=x"`+"\n")
	c, err = LoadClient(o)
	require.NoError(t, err)
	assert.Equal(t, "nsg:2181", c.ZK)
	assert.Equal(t, "/hanode", c.ZKRoot)
	assert.Equal(t, "default", c.Source(KeyZKRoot))
}

// TestLoadClientRefusesNoOrBadZooKeeper: no ZooKeeper at all, a bad ZK and
// a bad ZK_ROOT are configuration errors naming the key and its source,
// all at once; a missing --env-file is one too.
func TestLoadClientRefusesNoOrBadZooKeeper(t *testing.T) {
	_, err := LoadClient(opts(t))
	require.ErrorIs(t, err, ErrInvalid)
	assert.Contains(t, err.Error(), "ZK: no ZooKeeper to read: no env file was read; pass --zk")

	o := opts(t)
	o.EnvFile = writeFile(t, "ZK=embedded\n")
	_, err = LoadClient(o)
	assert.Contains(t, err.Error(), `ZK="embedded" (from `+o.EnvFile+`:1): no ZooKeeper to read`)

	o.Flags = clientFlags(t, "--zk", "zk1", "--zk-root", "nsg")
	_, err = LoadClient(o)
	require.ErrorIs(t, err, ErrInvalid)
	assert.Contains(t, err.Error(), `ZK="zk1" (from flag --zk): "zk1" is not host:port`)
	assert.Contains(t, err.Error(), `ZK_ROOT="nsg" (from flag --zk-root): znode path`)

	o = opts(t)
	o.EnvFile = o.DefaultEnvFile // absent
	_, err = LoadClient(o)
	require.ErrorIs(t, err, ErrInvalid)
}
