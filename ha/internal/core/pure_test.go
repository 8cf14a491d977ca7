package core

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// pureImports are the only packages the core may import: none reads a
// clock, starts a goroutine, talks to ZooKeeper or does other I/O on the
// core's behalf.
var pureImports = []string{"bytes", "cmp", "encoding/json", "errors", "fmt", "maps", "math", "slices", "sort",
	"strconv", "strings", "time"}

// impureTime are the functions of package time that read a clock or wait:
// the core gets its time from Step's argument only.
var impureTime = []string{"Now", "Since", "Until", "Sleep", "After", "AfterFunc", "NewTimer", "NewTicker", "Tick"}

// TestCoreIsPure fails when the core imports anything but pureImports,
// reads a clock, starts a goroutine or uses a channel: the compiler keeps
// the package boundary, this keeps the package pure.
func TestCoreIsPure(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	files := 0
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		files++
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if !slices.Contains(pureImports, p) {
				t.Errorf("%s imports %q: the core imports only %v", fset.Position(imp.Pos()), p, pureImports)
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.GoStmt:
				t.Errorf("%s: a goroutine in the core", fset.Position(n.Pos()))
			case *ast.ChanType:
				t.Errorf("%s: a channel in the core", fset.Position(n.Pos()))
			case *ast.SelectStmt:
				t.Errorf("%s: a select in the core", fset.Position(n.Pos()))
			case *ast.SelectorExpr:
				if id, ok := n.X.(*ast.Ident); ok && id.Name == "time" && slices.Contains(impureTime, n.Sel.Name) {
					t.Errorf("%s: time.%s in the core: its clock is Step's argument", fset.Position(n.Pos()), n.Sel.Name)
				}
			}
			return true
		})
	}
	if files < 10 {
		t.Fatalf("read only %d files: run from the package directory", files)
	}
}

// TestCoreDependsOnNoIO walks every package the core depends on, however
// indirectly (`go list -deps`): none may be a network, process, randomness
// or logging package, nor any module outside the standard library. (fmt
// and encoding/json bring os and syscall along; the core calls nothing of
// them, which TestCoreIsPure's import list keeps so.)
func TestCoreDependsOnNoIO(t *testing.T) {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(goBin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	banned := []string{"net", "os/exec", "os/signal", "crypto", "math/rand", "log", "context"}
	self := "github.com/hanode/hanode/ha/internal/core"
	for _, p := range strings.Fields(string(out)) {
		for _, b := range banned {
			if p == b || strings.HasPrefix(p, b+"/") {
				t.Errorf("the core depends on %s", p)
			}
		}
		if strings.Contains(strings.SplitN(p, "/", 2)[0], ".") && p != self {
			t.Errorf("the core depends on %s, outside the standard library", p)
		}
	}
}
