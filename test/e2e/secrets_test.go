package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/e7763abc/pod-runner/internal/secrettest"
	"github.com/e7763abc/pod-runner/test/testbin"
)

// canaryRun gives a Secret (SECRET) to one task in every way Tekton allows
// — env valueFrom.secretKeyRef, envFrom.secretRef with a prefix, and a
// Secret workspace laid out by items — and has the task report only the
// digests of what it saw. A second task binds nothing.
const canaryRun = `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: canary}
spec:
  workspaces:
  - name: creds
    secret:
      secretName: canary
      items: [{key: token, path: nested/tok}]
  pipelineSpec:
    workspaces: [{name: creds}]
    tasks:
    - name: uses
      workspaces: [{name: creds, workspace: creds}]
      taskSpec:
        workspaces: [{name: creds, readOnly: true}]
        results: [{name: env}, {name: envfrom}, {name: file}]
        steps:
        - name: digest
          image: busybox
          env:
          - name: TOKEN
            valueFrom: {secretKeyRef: {name: canary, key: token}}
          envFrom:
          - secretRef: {name: canary}
            prefix: S_
          script: |
            printf %s "$TOKEN" | sha256sum | cut -c1-64 | tr -d '\n' > $(results.env.path)
            printf %s "$S_token" | sha256sum | cut -c1-64 | tr -d '\n' > $(results.envfrom.path)
            sha256sum < $(workspaces.creds.path)/nested/tok | cut -c1-64 | tr -d '\n' > $(results.file.path)
    - name: other
      taskSpec:
        results: [{name: seen}]
        steps:
        - name: look
          image: busybox
          script: printf '%s' "${TOKEN-none}${S_token-none}" > $(results.seen.path)
---
apiVersion: v1
kind: Secret
metadata: {name: canary}
type: Opaque
stringData: {token: SECRET}
`

// canary is a value found nowhere but in the Secret.
func canary(t *testing.T) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "canary-" + hex.EncodeToString(b)
}

// noLeak fails t when text holds value in any form secrettest finds.
func noLeak(t *testing.T, where, text, value string) {
	t.Helper()
	if how := secrettest.Find(text, value); how != "" {
		t.Errorf("%s holds the Secret's value (%s)", where, how)
	}
}

// TestSecretCanaryLocal: a local run gives the task the Secret's value in
// env, envFrom and its workspace, and no output of the run — the status
// (-o json, -o yaml, text) and the progress log — holds it.
func TestSecretCanaryLocal(t *testing.T) {
	value := canary(t)
	in := strings.ReplaceAll(canaryRun, "SECRET", value)
	sum := sha256.Sum256([]byte(value))
	want := hex.EncodeToString(sum[:])

	r := run(t, in)
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	for _, res := range []string{"env", "envfrom", "file"} {
		if got := r.taskResult(t, "uses", res).StringVal; got != want {
			t.Errorf("uses: the %s digest is %q, want the Secret's %q", res, got, want)
		}
	}
	if got := r.taskResult(t, "other", "seen").StringVal; got != "nonenone" {
		t.Errorf("other, which binds nothing, saw %q", got)
	}
	noLeak(t, "the status (-o json)", r.stdout, value)
	noLeak(t, "the progress log", r.stderr, value)
	for _, format := range []string{"yaml", "text"} {
		cmd := exec.Command(binary, "run", "-f", "-", "-o", format)
		cmd.Stdin = strings.NewReader(in)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("-o %s: %v\n%s", format, err, out)
		}
		noLeak(t, "-o "+format, string(out), value)
	}
}

// TestSecretCanaryCompile: injector compile hands the Secret on as the
// document given, and no other document — the Pod, its environment, the
// Plan gzipped in it — holds its value.
func TestSecretCanaryCompile(t *testing.T) {
	injector, err := testbin.Build("github.com/e7763abc/pod-runner/cmd/injector")
	if err != nil {
		t.Fatal(err)
	}
	value := canary(t)
	in := strings.ReplaceAll(canaryRun, "SECRET", value)
	for _, format := range []string{"yaml-docs", "yaml", "json"} {
		t.Run(format, func(t *testing.T) {
			cmd := exec.Command(injector, "compile", "-f", "-", "--offline", "-o", format)
			cmd.Stdin = strings.NewReader(in)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("injector compile: %v\n%s", err, stderr.String())
			}
			noLeak(t, "injector compile's stderr", stderr.String(), value)
			var kinds []string
			for _, doc := range documents(t, format, stdout.Bytes()) {
				var meta struct{ Kind string }
				if err := yaml.Unmarshal(doc, &meta); err != nil {
					t.Fatal(err)
				}
				kinds = append(kinds, meta.Kind)
				if meta.Kind == "Secret" {
					var s corev1.Secret
					if err := yaml.UnmarshalStrict(doc, &s); err != nil {
						t.Fatal(err)
					}
					if s.Name != "canary" || s.StringData["token"] != value || len(s.Data) != 0 {
						t.Errorf("the Secret is not the document given: %+v", s)
					}
					continue
				}
				noLeak(t, meta.Kind, string(doc), value)
			}
			if strings.Join(kinds, ",") != "Secret,Pod" {
				t.Errorf("documents %v, want the Secret as given, then the Pod", kinds)
			}
		})
	}
}

// documents are the objects of injector compile's output: YAML documents,
// or the items of a v1 List in YAML or JSON.
func documents(t *testing.T, format string, out []byte) [][]byte {
	t.Helper()
	if format != "yaml-docs" {
		var list struct{ Items []json.RawMessage }
		if err := yaml.Unmarshal(out, &list); err != nil {
			t.Fatal(err)
		}
		docs := make([][]byte, len(list.Items))
		for i, it := range list.Items {
			docs[i] = it
		}
		return docs
	}
	var docs [][]byte
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(out)))
	for {
		doc, err := r.Read()
		if err == io.EOF {
			return docs
		}
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, doc)
	}
}
