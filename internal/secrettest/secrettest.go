// Package secrettest finds a Secret's value in what a run leaves behind
// (Pod specs, Plans, logs, statuses), whichever way it was written there:
// the tests of "no Secret byte outside the kubelet" use it.
package secrettest

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"io"
	"regexp"
)

// token is a run of base64 characters long enough to hold an encoded value.
var token = regexp.MustCompile(`[A-Za-z0-9+/_-]{8,}={0,2}`)

var encodings = []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding}

// Find says how text holds value: "plain", "base64", or "gzip+base64" (a
// base64 blob whose gzip stream holds it, as the Plan travels in a Pod), each
// also inside a decoded blob ("base64 > plain"); "" when it does not.
func Find(text, value string) string {
	return find([]byte(text), []byte(value), 3)
}

func find(text, value []byte, depth int) string {
	if bytes.Contains(text, value) {
		return "plain"
	}
	if depth == 0 {
		return ""
	}
	for _, enc := range encodings {
		if bytes.Contains(text, []byte(enc.EncodeToString(value))) {
			return "base64"
		}
	}
	for _, tok := range token.FindAll(text, -1) {
		for _, enc := range encodings {
			raw, err := enc.DecodeString(string(tok))
			if err != nil {
				continue
			}
			if how := find(raw, value, depth-1); how != "" {
				return "base64 > " + how
			}
			if z, err := gunzip(raw); err == nil {
				if how := find(z, value, depth-1); how != "" {
					return "gzip+base64 > " + how
				}
			}
		}
	}
	return ""
}

func gunzip(b []byte) ([]byte, error) {
	r, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(r, 64<<20))
}
