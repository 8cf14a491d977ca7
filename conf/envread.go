package conf

// Reading the env file: Load's second layer. readEnvFile picks the file,
// reads it and parses it (ParseEnvFile, envfile.go); scanFile then sorts its
// variables into settings of keys (set directly, or as -DKEY=value in
// SERVER_CLI), notices of variables that are not keys, and errors for names
// that misspell a key (unknown.go).

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"
)

// serverCLI is the NetSpyGlass variable whose -DKEY=value words may set keys.
const serverCLI = "SERVER_CLI"

// readEnvFile picks, reads and parses the env file; it returns nil, nil when
// there is none.
func readEnvFile(opts LoadOptions, lookupEnv func(string) (string, bool)) (*envFile, error) {
	path := opts.EnvFile
	if path == "" {
		path = opts.DefaultEnvFile
		if path == "" {
			path = DefaultEnvFile
		}
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, &invalidError{msg: "cannot read env file", err: err}
	}
	vals, err := ParseEnvFile(path, src, lookupEnv)
	hintMisspelt(err)
	return scanFile(path, vals), err
}

// envFile is the layer read from an env file.
type envFile struct {
	path     string
	settings map[string]Setting // known keys only, filtered by keep
	unused   []Notice           // variables that are not keys, in file order
	errs     []error            // variables that misspell a key
}

// scanFile sorts the variables of a parsed env file into settings of keys,
// notices of unused variables and errors for misspelt keys.
//
// A NetSpyGlass file may pass keys only inside SERVER_CLI as -DKEY=value;
// those count for keys the file does not assign directly. SERVER_CLI is
// listed as unused unless it holds a -D word of a key; then its -D words of
// other names are listed instead. Only -D words named like a shell variable
// are looked at: dotted names (-Dfile.encoding) are Java's, never hanode's.
func scanFile(path string, vals map[string]Value) *envFile {
	f := &envFile{path: path, settings: map[string]Setting{}}
	at := func(line int) string { return fmt.Sprintf("%s:%d", path, line) }
	names := slices.SortedFunc(maps.Keys(vals), func(a, b string) int {
		return cmp.Or(cmp.Compare(vals[a].Line, vals[b].Line), cmp.Compare(a, b))
	})
	for _, name := range names {
		v := vals[name]
		if _, known := lookupKey(name); known {
			if key, value := keep(name, v.Value); key != "" {
				f.settings[key] = Setting{Key: key, Value: value.(string), Source: at(v.Line)}
			}
			continue
		}
		rest, prefixed := strings.CutPrefix(name, EnvPrefix)
		key, caseOnly, near := resembles(rest)
		switch {
		case name == serverCLI:
			f.serverCLI(v, vals)
		case near && prefixed:
			f.errs = append(f.errs, &FieldError{Key: name, Value: v.Value, Source: at(v.Line),
				Msg: fmt.Sprintf("keys in the env file have no %s prefix (that is for environment variables): write %s", EnvPrefix, key)})
		case near:
			f.errs = append(f.errs, misspelt(name, v.Value, at(v.Line), key, key, caseOnly))
		default:
			f.unused = append(f.unused, Notice{Kind: NoticeUnused, Key: name, Source: at(v.Line), Msg: unusedMsg})
		}
	}
	return f
}

// serverCLI reads the -DKEY=value words of SERVER_CLI. The start script runs
// `java $SERVER_CLI`: the value is split on blanks, without quote removal.
// Like java, the last -D wins.
func (f *envFile) serverCLI(cli Value, vals map[string]Value) {
	var unused []Notice
	seen := map[string]bool{}
	usesKey := false
	for _, word := range strings.Fields(cli.Value) {
		kv, ok := strings.CutPrefix(word, "-D")
		if !ok {
			continue
		}
		name, value, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		source := fmt.Sprintf("%s:%d, -D%s in %s", f.path, cli.Line, name, serverCLI)
		if _, known := lookupKey(name); known {
			usesKey = true
			if _, direct := vals[name]; direct {
				continue
			}
			if key, v := keep(name, value); key != "" {
				f.settings[key] = Setting{Key: key, Value: v.(string), Source: source}
			}
			continue
		}
		if !isName(name) || seen[name] {
			continue
		}
		seen[name] = true
		if key, caseOnly, near := resembles(name); near {
			f.errs = append(f.errs, misspelt(name, value, source, key, "-D"+key, caseOnly))
			continue
		}
		unused = append(unused, Notice{Kind: NoticeUnused, Key: name, Source: source, Msg: unusedMsg})
	}
	if !usesKey {
		unused = []Notice{{Kind: NoticeUnused, Key: serverCLI, Source: fmt.Sprintf("%s:%d", f.path, cli.Line), Msg: unusedMsg}}
	}
	f.unused = append(f.unused, unused...)
}
