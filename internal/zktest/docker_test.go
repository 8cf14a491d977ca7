package zktest

import (
	"os"
	"testing"
)

// TestDockerRequired: a missing engine fails the tests in CI and whenever
// HANODE_REQUIRE_DOCKER says true (or cannot be read), and skips them
// otherwise; HANODE_REQUIRE_DOCKER=0 allows skipping even in CI.
func TestDockerRequired(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string // "" value: unset
		want    bool
		wantWhy string
	}{
		{name: "neither set: skip", env: map[string]string{"CI": "", RequireDockerEnv: ""}, want: false},
		{name: "CI=true: fail", env: map[string]string{"CI": "true", RequireDockerEnv: ""}, want: true, wantWhy: "CI=true"},
		{name: "CI=1: fail", env: map[string]string{"CI": "1", RequireDockerEnv: ""}, want: true, wantWhy: "CI=1"},
		{name: "CI=false: skip", env: map[string]string{"CI": "false", RequireDockerEnv: ""}, want: false},
		{name: "required by the variable", env: map[string]string{"CI": "", RequireDockerEnv: "1"}, want: true, wantWhy: RequireDockerEnv + "=1"},
		{name: "the variable wins over CI", env: map[string]string{"CI": "true", RequireDockerEnv: "0"}, want: false, wantWhy: RequireDockerEnv + "=0"},
		{name: "an unreadable value requires", env: map[string]string{"CI": "", RequireDockerEnv: "yes"}, want: true, wantWhy: RequireDockerEnv + "=yes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v) // restores the original value after the test
				if v == "" {
					os.Unsetenv(k)
				}
			}
			got, why := dockerRequired()
			if got != tc.want || why != tc.wantWhy {
				t.Fatalf("dockerRequired() = %v, %q; want %v, %q", got, why, tc.want, tc.wantWhy)
			}
		})
	}
}
