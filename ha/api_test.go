package ha

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"slices"
	"strings"
	"testing"
)

// userFacingCore are the core's names a library user needs, re-exported by
// ha: what a member publishes and reads, a fence's request, a transition,
// a fenced write's ops and the lease's limits. The rest of the core's
// vocabulary (events, actions, Core, Snapshot, Result...) stays internal.
var userFacingCore = []string{"Phase", "PhaseStarting", "PhaseStandby", "PhaseWaiting", "PhaseFencing", "PhaseActive",
	"PhaseDisconnected", "PhaseUnhealthy", "PhaseStopped", "PolicyFirstCome", "PolicyPriority", "PauseInfo", "CauseFirst", "CauseGraceful", "CauseSwitchover", "CauseHealth", "CausePreemption", "CauseDutyLost", "CauseCrash", "CausePause", "CauseResume", "SwitchoverInfo", "MemberInfo", "Member", "Ignored", "FenceRequest", "LeaderInfo", "Transition",
	"Op", "OpKind", "OpCreate", "OpDelete", "OpSet", "OpCheck", "MinLease", "MaxTerm", "DriftAllowance", "GroupStatus",
	"ErrGroupMismatch"}

// TestAPIExportsNoCoreInternals fails when package ha exports a piece of
// the decision core beyond userFacingCore: `go doc ./ha` lists what a
// library user needs.
func TestAPIExportsNoCoreInternals(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, e.Name(), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		check := func(name *ast.Ident, expr ast.Expr) {
			if !name.IsExported() {
				return
			}
			if strings.HasPrefix(name.Name, "Ev") || strings.HasPrefix(name.Name, "Act") {
				t.Errorf("%s: ha exports %s, a core event or action", fset.Position(name.Pos()), name.Name)
			}
			if sel, ok := expr.(*ast.SelectorExpr); ok {
				if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "core" && !slices.Contains(userFacingCore, sel.Sel.Name) {
					t.Errorf("%s: ha exports core.%s as %s; only %v are for library users", fset.Position(name.Pos()),
						sel.Sel.Name, name.Name, userFacingCore)
				}
			}
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok {
				continue
			}
			for _, sp := range gd.Specs {
				switch sp := sp.(type) {
				case *ast.TypeSpec:
					check(sp.Name, sp.Type)
				case *ast.ValueSpec:
					for i, n := range sp.Names {
						var v ast.Expr
						if i < len(sp.Values) {
							v = sp.Values[i]
						}
						check(n, v)
					}
				}
			}
		}
	}
}
