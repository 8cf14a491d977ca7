package metrics

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

const rulesFile = "../etc/prometheus/hanode-rules.yml"

// TestAlertRulesPassPromtool: the shipped alert rules are valid and their
// unit tests (testdata/hanode-rules.test.yml) pass. It needs promtool
// (Debian's prometheus package; .ci/run installs it).
func TestAlertRulesPassPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("!!! promtool is not installed: the alert rules in etc/prometheus/hanode-rules.yml are NOT checked " +
			"(apt-get install prometheus, or run .ci/run) !!!")
	}
	for _, args := range [][]string{{"check", "rules", rulesFile}, {"test", "rules", "testdata/hanode-rules.test.yml"}} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestAlertRulesNameOnlyExportedMetrics: every hanode_ metric the rules
// use is one this package exports, so a rename cannot silence an alert.
func TestAlertRulesNameOnlyExportedMetrics(t *testing.T) {
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	m := New(node)
	m.WatchSession(fakeSession{})
	fams, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range fams {
		exported[f.GetName()] = true
	}
	used := regexp.MustCompile(`\bhanode_[a-z_]+\b`).FindAllString(string(rules), -1)
	if len(used) == 0 {
		t.Fatal("the rules use no hanode_ metric")
	}
	for _, name := range used {
		if !exported[name] && !exported[strings.TrimSuffix(strings.TrimSuffix(name, "_count"), "_sum")] {
			t.Errorf("the rules use %s, which is not exported", name)
		}
	}
}
