package hatest_test

import "testing"

// runTest runs a test body in Example. Examples get no *testing.T, and this
// one needs Docker, so it has no Output line (go test only compiles it);
// TestExample runs it with a real *testing.T.
var runTest = func(func(*testing.T)) {}

// TestExample runs Example's failover test.
func TestExample(t *testing.T) {
	runTest = func(f func(*testing.T)) { f(t) }
	defer func() { runTest = func(func(*testing.T)) {} }()
	Example()
}
