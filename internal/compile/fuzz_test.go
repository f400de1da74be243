package compile

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/e7763abc/pod-runner/internal/load"
)

// FuzzCompile feeds any bytes through what `pod-runner run -f` and
// `injector compile` do with a file: read the documents, compile the run.
// Nothing may panic, and every rejection is a *load.Error (the message that
// names the document and field, exit code 2). The seeds are Tekton's own
// examples (examples/v1 of the pinned module, read at test time).
func FuzzCompile(f *testing.F) {
	root := filepath.Join(tektonDir(f), "examples", "v1")
	seeds := 0
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".yaml" {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f.Add(b)
		seeds++
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
	if seeds < 100 {
		f.Fatalf("%d seeds from %s: want Tekton's examples", seeds, root)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := load.Read("fuzz.yaml", bytes.NewReader(data))
		if err != nil {
			invalid(t, "load.Read", err)
			return
		}
		c, err := Compile(ctx, docs, Options{})
		if err != nil {
			invalid(t, "Compile", err)
			return
		}
		if _, err := proto.Marshal(c.Plan); err != nil {
			t.Fatalf("the Plan does not encode: %v", err)
		}
		_ = c.LocalError()
		_ = c.PodError()
	})
}

// invalid fails t unless err is invalid input, with a message.
func invalid(t *testing.T, what string, err error) {
	t.Helper()
	var le *load.Error
	if !errors.As(err, &le) {
		t.Fatalf("%s: %v (%T), want a *load.Error naming the document and field", what, err, err)
	}
	if le.Msg == "" {
		t.Fatalf("%s: an error without a message: %+v", what, le)
	}
}
