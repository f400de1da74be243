package load

import (
	"errors"
	"strings"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	corev1 "k8s.io/api/core/v1"
)

func TestReadDocuments(t *testing.T) {
	in := `
# a comment-only document is skipped
---
apiVersion: tekton.dev/v1
kind: Pipeline
metadata:
  name: build
spec:
  tasks:
  - name: a
    taskRef:
      name: t
---
---
apiVersion: tekton.dev/v1beta1
kind: Task
metadata:
  name: t
spec:
  params:
  - name: p
    default: x
  steps:
  - name: s
    image: busybox
    script: echo hi
---
apiVersion: tekton.dev/v1beta1
kind: PipelineRun
metadata:
  generateName: run-
spec:
  pipelineRef:
    name: build
---
apiVersion: tekton.dev/v1alpha1
kind: StepAction
metadata:
  name: sa
spec:
  image: busybox
  script: echo sa
---
apiVersion: tekton.dev/v1beta1
kind: StepAction
metadata:
  name: sb
spec:
  image: busybox
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cm
data:
  k: v
---
apiVersion: v1
kind: Secret
metadata:
  name: sec
stringData:
  k: v
`
	docs, err := Read("in.yaml", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		display string
		kind    string
		name    string
		check   func(any) bool
	}{
		{"in.yaml#1 (Pipeline/build)", KindPipeline, "build", func(o any) bool { _, ok := o.(*v1.Pipeline); return ok }},
		{"in.yaml#2 (Task/t)", KindTask, "t", func(o any) bool {
			task, ok := o.(*v1.Task)
			return ok && task.Spec.Params[0].Default.StringVal == "x" && task.Spec.Steps[0].Script == "echo hi"
		}},
		{"in.yaml#3 (PipelineRun/run-)", KindPipelineRun, "run-", func(o any) bool {
			pr, ok := o.(*v1.PipelineRun)
			return ok && pr.Spec.PipelineRef.Name == "build" && pr.GenerateName == "run-"
		}},
		{"in.yaml#4 (StepAction/sa)", KindStepAction, "sa", func(o any) bool {
			sa, ok := o.(*v1beta1.StepAction)
			return ok && sa.Spec.Script == "echo sa"
		}},
		{"in.yaml#5 (StepAction/sb)", KindStepAction, "sb", func(o any) bool { _, ok := o.(*v1beta1.StepAction); return ok }},
		{"in.yaml#6 (ConfigMap/cm)", KindConfigMap, "cm", func(o any) bool {
			cm, ok := o.(*corev1.ConfigMap)
			return ok && cm.Data["k"] == "v"
		}},
		{"in.yaml#7 (Secret/sec)", KindSecret, "sec", func(o any) bool {
			s, ok := o.(*corev1.Secret)
			return ok && s.StringData["k"] == "v"
		}},
	}
	if len(docs) != len(want) {
		t.Fatalf("got %d docs, want %d", len(docs), len(want))
	}
	for i, w := range want {
		d := docs[i]
		if d.Display != w.display || d.Kind != w.kind || d.Name != w.name || !w.check(d.Object) {
			t.Errorf("doc %d = %q %s/%s %T, want %q %s/%s", i, d.Display, d.Kind, d.Name, d.Object, w.display, w.kind, w.name)
		}
	}
}

func TestReadInvalid(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		doc       string
		field     string
		msgSubstr string
	}{
		{
			name:      "unparseable YAML",
			in:        "apiVersion: tekton.dev/v1\nkind: Task\nmetadata: [name: x\n",
			doc:       "f.yaml#1",
			msgSubstr: "invalid YAML",
		},
		{
			name: "unknown kind",
			in: `apiVersion: v1
kind: Deployment
metadata:
  name: d
`,
			doc:       "f.yaml#1 (Deployment/d)",
			field:     "kind",
			msgSubstr: `unknown kind "Deployment"`,
		},
		{
			name: "cluster object in the wrong version",
			in: `apiVersion: rbac.authorization.k8s.io/v1beta1
kind: RoleBinding
metadata:
  name: rb
`,
			doc:       "f.yaml#1 (RoleBinding/rb)",
			field:     "apiVersion",
			msgSubstr: `not served for RoleBinding`,
		},
		{
			name:      "missing kind",
			in:        "apiVersion: v1\nmetadata:\n  name: x\n",
			doc:       "f.yaml#1",
			field:     "kind",
			msgSubstr: "missing kind",
		},
		{
			name:      "version not served",
			in:        "apiVersion: tekton.dev/v1\nkind: StepAction\nmetadata:\n  name: sa\n",
			doc:       "f.yaml#1 (StepAction/sa)",
			field:     "apiVersion",
			msgSubstr: "tekton.dev/v1beta1",
		},
		{
			name: "unknown field, second document",
			in: `apiVersion: v1
kind: ConfigMap
metadata:
  name: ok
---
apiVersion: tekton.dev/v1
kind: Pipeline
metadata:
  name: p
spec:
  tasks:
  - name: a
    taskRef:
      name: t
    runAftr: [b]
`,
			doc:       "f.yaml#2 (Pipeline/p)",
			field:     "spec.tasks[0].runAftr",
			msgSubstr: "unknown field",
		},
		{
			name: "duplicate field",
			in: `apiVersion: tekton.dev/v1
kind: Task
metadata:
  name: t
spec:
  steps:
  - name: s
    image: a
    image: b
`,
			doc:       "f.yaml#1 (Task/t)",
			msgSubstr: `key "image" already set`,
		},
		{
			name: "wrong type",
			in: `apiVersion: tekton.dev/v1
kind: Task
metadata:
  name: t
spec:
  steps: hello
`,
			doc:       "f.yaml#1 (Task/t)",
			field:     "spec.steps",
			msgSubstr: "cannot decode",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read("f.yaml", strings.NewReader(tt.in))
			var le *Error
			if !errors.As(err, &le) {
				t.Fatalf("Read() error = %v (%T), want *load.Error", err, err)
			}
			if le.Doc != tt.doc || le.Field != tt.field || !strings.Contains(le.Msg, tt.msgSubstr) {
				t.Errorf("Read() = {Doc: %q, Field: %q, Msg: %q}, want Doc %q, Field %q, Msg containing %q",
					le.Doc, le.Field, le.Msg, tt.doc, tt.field, tt.msgSubstr)
			}
		})
	}
}

// TestReadClusterObjects: the ServiceAccount, RBAC and claims that come with
// runs meant for a cluster are read and not used.
func TestReadClusterObjects(t *testing.T) {
	in := `
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: pvc}
spec: {accessModes: [ReadWriteOnce]}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: sa}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: crb}
`
	docs, err := Read("f.yaml", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 3 {
		t.Fatalf("%d docs", len(docs))
	}
	for _, d := range docs {
		if d.Object != nil || d.Kind == "" {
			t.Errorf("%s: object %T, kind %q", d.Display, d.Object, d.Kind)
		}
	}
}

func TestReadEmpty(t *testing.T) {
	docs, err := Read("empty.yaml", strings.NewReader("---\n# nothing\n---\n"))
	if err != nil || len(docs) != 0 {
		t.Fatalf("Read() = %v, %v; want no docs, no error", docs, err)
	}
}

// TestReadFieldCase: a field name that differs from Tekton's only in case
// is read as Tekton's defaulting webhook stores it (encoding/json matches
// names case-insensitively), and a truly unknown field beside it is still
// an error.
func TestReadFieldCase(t *testing.T) {
	const task = `apiVersion: tekton.dev/v1
kind: Task
metadata: {name: t}
spec:
  workspaces: [{name: creds}]
  steps:
  - name: s
    image: busybox
    workspaces: [{name: creds, mountpath: /creds}]
`
	docs, err := Read("f.yaml", strings.NewReader(task))
	if err != nil {
		t.Fatal(err)
	}
	got := docs[0].Object.(*v1.Task).Spec.Steps[0].Workspaces[0].MountPath
	if got != "/creds" {
		t.Errorf("mountpath read as mountPath %q, want /creds", got)
	}
	_, err = Read("f.yaml", strings.NewReader(task+"    imagePullPolcy: Always\n"))
	if err == nil || !strings.Contains(err.Error(), `unknown field "spec.steps[0].imagePullPolcy"`) {
		t.Errorf("a misspelt field beside it: %v, want it named as unknown", err)
	}
}
