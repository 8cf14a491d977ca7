package simzk

import (
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Two path checks exist. go-zookeeper checks the path of every single request
// before sending it (zk.ErrInvalidPath, the server never sees it), but not the
// paths inside a Multi. The server checks with Java's PathUtils.validatePath
// (zk.ErrBadArguments), which is stricter about characters: it also rejects
// U+D800..U+EFFF and so any character outside the Basic Multilingual Plane,
// which Java holds as a surrogate pair.

// clientPathOK is go-zookeeper v1.0.4's validatePath, quirks included.
func clientPathOK(path string, isSequential bool) bool {
	if path == "" || path[0] != '/' {
		return false
	}
	n := len(path)
	if n == 1 {
		return true
	}
	if !isSequential && path[n-1] == '/' {
		return false
	}
	for i, w := 1, 0; i < n; i += w {
		r, width := utf8.DecodeRuneInString(path[i:])
		switch {
		case r == '\u0000':
			return false
		case r == '/':
			last, _ := utf8.DecodeLastRuneInString(path[:i])
			if last == '/' {
				return false
			}
		case r == '.':
			last, lastWidth := utf8.DecodeLastRuneInString(path[:i])
			if last == '.' {
				last, _ = utf8.DecodeLastRuneInString(path[:i-lastWidth])
			}
			if last == '/' {
				if i+1 == n {
					return false
				}
				next, _ := utf8.DecodeRuneInString(path[i+w:])
				if next == '/' {
					return false
				}
			}
		case r >= '\u0000' && r <= '\u001f',
			r >= '\u007f' && r <= '\u009f',
			r >= '\uf000' && r <= '\uf8ff',
			r >= '\ufff0' && r < '\uffff':
			return false
		}
		w = width
	}
	return true
}

// serverPathOK is ZooKeeper's PathUtils.validatePath(String), which works on
// UTF-16 code units (the server decodes the request's UTF-8 first; invalid
// bytes become U+FFFD, which it rejects).
func serverPathOK(path string) bool {
	if path == "" || path[0] != '/' {
		return false
	}
	if len(path) == 1 {
		return true
	}
	if path[len(path)-1] == '/' {
		return false
	}
	var stack [128]uint16
	chars := stack[:0]
	if isASCII(path) {
		for i := 0; i < len(path); i++ {
			chars = append(chars, uint16(path[i]))
		}
	} else {
		chars = utf16.Encode([]rune(path))
	}
	lastc := uint16('/')
	for i := 1; i < len(chars); lastc, i = chars[i], i+1 {
		c := chars[i]
		switch {
		case c == 0:
			return false
		case c == '/' && lastc == '/':
			return false
		case c == '.' && lastc == '.':
			if chars[i-2] == '/' && (i+1 == len(chars) || chars[i+1] == '/') {
				return false
			}
		case c == '.':
			if chars[i-1] == '/' && (i+1 == len(chars) || chars[i+1] == '/') {
				return false
			}
		case c > 0 && c <= 0x1f,
			c >= 0x7f && c <= 0x9f,
			c >= 0xd800 && c <= 0xf8ff,
			c >= 0xfff0:
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// isSpecialPath is DataTree.isSpecialPath: paths no one may delete.
func isSpecialPath(path string) bool {
	switch path {
	case "/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config":
		return true
	}
	return false
}

// sequenceSuffix is Java's String.format("%010d", v).
func sequenceSuffix(v int32) string {
	var buf [11]byte
	neg := v < 0
	u := int64(v)
	if neg {
		u = -u
	}
	i := len(buf)
	for u > 0 || i > len(buf)-1 {
		i--
		buf[i] = byte('0' + u%10)
		u /= 10
	}
	width := 10
	if neg {
		width = 9
	}
	for len(buf)-i < width {
		i--
		buf[i] = '0'
	}
	if neg {
		i--
		buf[i] = '-'
	}
	return string(buf[i:])
}

// hasNUL reports whether the path holds a NUL character.
func hasNUL(path string) bool { return strings.IndexByte(path, 0) >= 0 }
