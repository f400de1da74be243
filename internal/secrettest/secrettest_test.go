package secrettest

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"testing"
)

func TestFind(t *testing.T) {
	const v = "canary-7f3a9c"
	var z bytes.Buffer
	w := gzip.NewWriter(&z)
	w.Write([]byte("plan bytes before " + v + " and after"))
	w.Close()
	gz := base64.StdEncoding.EncodeToString(z.Bytes())
	// A value inside a larger blob, at an offset that does not align with
	// base64's 3-byte groups.
	embedded := base64.StdEncoding.EncodeToString([]byte("xx" + v + "yyyy"))
	for text, want := range map[string]string{
		"env: " + v: "plain",
		"data: {token: " + base64.StdEncoding.EncodeToString([]byte(v)) + "}": "base64",
		"value: " + embedded:    "base64 > plain",
		"POD_RUNNER_PLAN=" + gz: "gzip+base64 > plain",
		"nothing here, not even " + base64.StdEncoding.EncodeToString([]byte("canary")): "",
	} {
		if got := Find(text, v); got != want {
			t.Errorf("Find(%.40q) = %q, want %q", text, got, want)
		}
	}
}
