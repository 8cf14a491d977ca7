package conf

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAdminSocketKey: ADMIN_SOCKET is empty by default (no socket), takes
// an absolute path to a socket file, and refuses a relative path, a
// directory and a path too long for a Unix socket, naming the key and the
// file:line it came from, next to the other keys' problems.
func TestAdminSocketKey(t *testing.T) {
	c, err := Validate(minimal())
	require.NoError(t, err)
	assert.Equal(t, "", c.AdminSocket)

	c, err = Validate(minimal(set(KeyAdminSocket, " /run/hanode/admin.sock ")))
	require.NoError(t, err)
	assert.Equal(t, "/run/hanode/admin.sock", c.AdminSocket)
	assert.Empty(t, c.Notices())

	dir := t.TempDir()
	for _, tc := range []struct{ value, want string }{
		{"run/hanode/admin.sock", "must be an absolute path"},
		{"/run/hanode/", "ends with /"},
		{dir, "is a directory: name the socket file inside it, such as " + filepath.Join(dir, "admin.sock")},
		{"/" + strings.Repeat("s", 107), "108 bytes, longer than the 107 a Unix socket's path may have"},
	} {
		_, err := Validate(minimal(set(KeyAdminSocket, tc.value)))
		require.Error(t, err, tc.value)
		assert.ErrorIs(t, err, ErrInvalid)
		assert.Contains(t, err.Error(), "ADMIN_SOCKET=", tc.value)
		assert.Contains(t, err.Error(), tc.want, tc.value)
	}

	// From the env file: the error names file:line; an empty value later
	// (a flag) turns the socket off.
	path := writeFile(t, "NAME=n\nROLE=primary\nADMIN_SOCKET=admin.sock\nZK_SESSION_TIMEOUT=10x\n")
	o := opts(t)
	o.EnvFile = path
	_, err = Load(o)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `ADMIN_SOCKET="admin.sock" (from `+path+`:3): must be an absolute path`)
	assert.Contains(t, err.Error(), `ZK_SESSION_TIMEOUT="10x"`, "every problem at once")

	o.EnvFile = writeFile(t, "NAME=n\nROLE=primary\nADMIN_SOCKET=/run/hanode/admin.sock\n")
	c, err = Load(o)
	require.NoError(t, err)
	assert.Equal(t, Setting{KeyAdminSocket, "/run/hanode/admin.sock", o.EnvFile + ":3"}, setting(t, c, KeyAdminSocket))
	o.Flags = flags(t, "--admin-socket=")
	c, err = Load(o)
	require.NoError(t, err)
	assert.Equal(t, "", c.AdminSocket)
}
