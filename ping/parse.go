package ping

import "bytes"

// Parsing for the wire path (wire.go): strict, and never an error. A request
// is answered here only if every line of it is one the wire path fully
// understands; at the first line that is not, parse hands the request to
// net/http, which answers it as it always has, 400s included, and at the
// same moment (net/http, too, answers a bad line as soon as it reads it).

// maxWireHeader bounds a request the wire path buffers; a longer one goes to
// net/http, whose limit is maxHeaderBytes.
const maxWireHeader = 4 << 10

// wireRequest is one request the wire path answers.
type wireRequest struct {
	n      int    // bytes it takes up, header block included
	path   []byte // request path without the query, for the debug log
	head   bool
	se     bool
	http10 bool // HTTP/1.0, not HTTP/1.1
	// closing: the connection ends after the answer ("Connection: close",
	// or HTTP/1.0 without "Connection: keep-alive").
	closing bool
}

type verdict uint8

const (
	verdictMore    verdict = iota // incomplete: read more
	verdictAnswer                 // complete and answerable here
	verdictHandOff                // net/http's to answer
)

// parse reads the request at the start of b.
func (r route) parse(b []byte) (wireRequest, verdict) {
	var req wireRequest
	line, rest, v := nextLine(b)
	if v != verdictAnswer {
		return req, incomplete(b, v)
	}
	switch {
	case bytes.HasPrefix(line, []byte("GET ")):
		line = line[len("GET "):]
	case bytes.HasPrefix(line, []byte("HEAD ")):
		req.head = true
		line = line[len("HEAD "):]
	default:
		return req, verdictHandOff
	}
	target, ok := bytes.CutSuffix(line, []byte(" HTTP/1.1"))
	if !ok {
		// HAProxy's "option httpchk" probes in HTTP/1.0 unless told otherwise.
		if target, ok = bytes.CutSuffix(line, []byte(" HTTP/1.0")); !ok {
			return req, verdictHandOff
		}
		req.http10 = true
	}
	path, query, hasQuery := bytes.Cut(target, []byte("?"))
	if hasQuery && !plainQuery(query) {
		return req, verdictHandOff
	}
	if req.se, ok = r.matchBytes(path); !ok {
		return req, verdictHandOff
	}
	req.path = path

	hosts, conns, keepAlive := 0, 0, false
	for {
		line, rest, v = nextLine(rest)
		if v != verdictAnswer {
			return req, incomplete(b, v)
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := splitHeader(line)
		if !ok {
			return req, verdictHandOff
		}
		switch {
		case asciiEqualFold(name, "Host"):
			hosts++
			if !plainHost(value) {
				return req, verdictHandOff
			}
		case asciiEqualFold(name, "Connection"):
			conns++
			switch {
			case asciiEqualFold(value, "close"):
				req.closing = true
			case asciiEqualFold(value, "keep-alive"):
				keepAlive = true
			default:
				return req, verdictHandOff
			}
		case asciiEqualFold(name, "Content-Length"), asciiEqualFold(name, "Transfer-Encoding"),
			asciiEqualFold(name, "Expect"), asciiEqualFold(name, "Upgrade"):
			return req, verdictHandOff
		}
	}
	// HTTP/1.1 requires one Host; HTTP/1.0 allows none. Both allow one
	// Connection header at most, here.
	if hosts > 1 || (hosts == 0 && !req.http10) || conns > 1 {
		return req, verdictHandOff
	}
	if req.http10 && !keepAlive {
		req.closing = true
	}
	req.n = len(b) - len(rest)
	return req, verdictAnswer
}

// incomplete turns "more" into "hand off" once the request b has grown to
// maxWireHeader.
func incomplete(b []byte, v verdict) verdict {
	if v == verdictMore && len(b) >= maxWireHeader {
		return verdictHandOff
	}
	return v
}

// nextLine splits off the CRLF-terminated line at the start of b. A line
// ending in a bare LF is handed off (net/http accepts it; the wire path does
// not bother).
func nextLine(b []byte) (line, rest []byte, v verdict) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, nil, verdictMore
	}
	if i == 0 || b[i-1] != '\r' {
		return nil, nil, verdictHandOff
	}
	return b[:i-1], b[i+1:], verdictAnswer
}

// matchBytes is route.matchPath on bytes, without allocating.
func (r route) matchBytes(path []byte) (se, ok bool) {
	if r.prefix == "" || len(path) < len(r.prefix) || string(path[:len(r.prefix)]) != r.prefix {
		return false, false
	}
	switch string(path[len(r.prefix):]) {
	case "":
		return false, true
	case "se/":
		return true, true
	}
	return false, false
}

// splitHeader splits "Name: value" with a token name and a value of
// printable ASCII and tabs, trimmed of spaces and tabs. Anything else,
// obsolete line folding included, is not ok.
func splitHeader(line []byte) (name, value []byte, ok bool) {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return nil, nil, false
	}
	name, value = line[:i], line[i+1:]
	for _, c := range name {
		if !isTokenByte(c) {
			return nil, nil, false
		}
	}
	for _, c := range value {
		if (c < ' ' && c != '\t') || c > '~' {
			return nil, nil, false
		}
	}
	return name, bytes.Trim(value, " \t"), true
}

func isTokenByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// plainHost reports whether a Host value is a non-empty host[:port] made of
// letters, digits and ".-_:[]", which net/http accepts as it is.
func plainHost(v []byte) bool {
	if len(v) == 0 {
		return false
	}
	for _, c := range v {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '-', c == '_', c == ':', c == '[', c == ']':
		default:
			return false
		}
	}
	return true
}

// plainQuery reports whether a query is printable ASCII without spaces or
// '#', which net/http takes without a question.
func plainQuery(q []byte) bool {
	for _, c := range q {
		if c <= ' ' || c > '~' || c == '#' {
			return false
		}
	}
	return true
}

// asciiEqualFold is strings.EqualFold for an ASCII word, without a conversion.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c, d := b[i], s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}
