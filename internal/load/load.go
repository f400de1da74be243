// Package load reads the Tekton and Kubernetes documents of a run from YAML.
package load

//lint:file-ignore SA1019 deprecated v1beta1 documents are read to be converted to v1

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1alpha1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	tektonscheme "github.com/tektoncd/pipeline/pkg/client/clientset/versioned/scheme"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/yaml"
	knjson "knative.dev/pkg/webhook/json"
)

// Kinds pod-runner reads.
const (
	KindPipelineRun = "PipelineRun"
	KindTaskRun     = "TaskRun"
	KindPipeline    = "Pipeline"
	KindTask        = "Task"
	KindStepAction  = "StepAction"
	KindConfigMap   = "ConfigMap"
	KindSecret      = "Secret"
)

// Doc is one document of the input, decoded.
type Doc struct {
	// Display names the document for messages: "file.yaml#2 (Pipeline/build)".
	Display string
	// File is the file name given to Read; Index is the document's number in
	// it, counting non-empty documents from 1.
	File  string
	Index int
	Kind  string
	// Name is metadata.name, or metadata.generateName when name is empty.
	Name string
	// APIVersion is the version the document was written in.
	APIVersion string
	// Object is the decoded object. Tekton kinds are in their storage
	// version: *v1.PipelineRun, *v1.TaskRun, *v1.Pipeline, *v1.Task (v1beta1
	// converted to v1), *v1beta1.StepAction (v1alpha1 converted); then
	// *corev1.ConfigMap, *corev1.Secret. It is nil for the cluster objects a
	// local run does not use (clusterKinds).
	Object runtime.Object
}

// decoder decodes strictly: an unknown or duplicated field is an error.
var (
	decoder runtime.Decoder
	scheme  = runtime.NewScheme()
)

func init() {
	utilruntime.Must(tektonscheme.AddToScheme(scheme))
	utilruntime.Must(corev1.AddToScheme(scheme))
	decoder = serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
}

// supported are the group/versions read for each kind: what Tekton v1.15.1
// serves (StepAction has no v1) and core/v1.
var supported = map[string][]string{
	KindPipelineRun: {"tekton.dev/v1", "tekton.dev/v1beta1"},
	KindTaskRun:     {"tekton.dev/v1", "tekton.dev/v1beta1"},
	KindPipeline:    {"tekton.dev/v1", "tekton.dev/v1beta1"},
	KindTask:        {"tekton.dev/v1", "tekton.dev/v1beta1"},
	KindStepAction:  {"tekton.dev/v1beta1", "tekton.dev/v1alpha1"},
	KindConfigMap:   {"v1"},
	KindSecret:      {"v1"},
}

// clusterKinds are Kubernetes objects that come with a run meant for a
// cluster (its ServiceAccount and RBAC, the claims it binds): a local run
// needs none of them. They are accepted, their kind and version checked, and
// not decoded further: Doc.Object is nil. A claim a run binds becomes a
// directory of the run either way.
var clusterKinds = map[string][]string{
	"PersistentVolumeClaim": {"v1"},
	"ServiceAccount":        {"v1"},
	"Role":                  {"rbac.authorization.k8s.io/v1"},
	"RoleBinding":           {"rbac.authorization.k8s.io/v1"},
	"ClusterRole":           {"rbac.authorization.k8s.io/v1"},
	"ClusterRoleBinding":    {"rbac.authorization.k8s.io/v1"},
}

// header is what is read of a document before decoding it.
type header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name         string `json:"name"`
		GenerateName string `json:"generateName"`
	} `json:"metadata"`
}

// Read reads the multi-document YAML stream r, named name in messages. Empty
// documents are skipped. Any document that cannot be decoded makes Read fail
// with an *Error naming it.
func Read(name string, r io.Reader) ([]Doc, error) {
	yr := yaml.NewYAMLReader(bufio.NewReader(r))
	var docs []Doc
	for {
		chunk, err := yr.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, Errorf(fmt.Sprintf("%s#%d", name, len(docs)+1), "", "read YAML: %v", err)
		}
		doc, empty, err := decode(name, len(docs)+1, chunk)
		if err != nil {
			return nil, err
		}
		if !empty {
			docs = append(docs, doc)
		}
	}
}

// decode decodes one document; empty tells a document with no content.
func decode(file string, index int, chunk []byte) (doc Doc, empty bool, err error) {
	doc = Doc{File: file, Index: index, Display: fmt.Sprintf("%s#%d", file, index)}
	js, err := yaml.ToJSON(chunk)
	if err != nil {
		return doc, false, Errorf(doc.Display, "", "invalid YAML: %v", err)
	}
	if s := strings.TrimSpace(string(js)); s == "null" || s == "" {
		return doc, true, nil
	}
	var h header
	if err := json.Unmarshal(js, &h); err != nil {
		return doc, false, Errorf(doc.Display, "", "not a Kubernetes object: %v", err)
	}
	doc.Kind, doc.APIVersion = h.Kind, h.APIVersion
	doc.Name = h.Metadata.Name
	if doc.Name == "" {
		doc.Name = h.Metadata.GenerateName
	}
	if h.Kind != "" {
		doc.Display = fmt.Sprintf("%s#%d (%s/%s)", file, index, h.Kind, doc.Name)
	}
	versions, known := supported[h.Kind]
	cluster, isCluster := clusterKinds[h.Kind]
	switch {
	case h.Kind == "":
		return doc, false, Errorf(doc.Display, "kind", "missing kind")
	case isCluster && slices.Contains(cluster, h.APIVersion):
		return doc, false, nil
	case isCluster:
		return doc, false, Errorf(doc.Display, "apiVersion", "%s is not served for %s: want %s", quoteOrEmpty(h.APIVersion), h.Kind, strings.Join(cluster, ", "))
	case !known:
		return doc, false, Errorf(doc.Display, "kind", "unknown kind %q: want one of PipelineRun, TaskRun, Pipeline, Task, StepAction, ConfigMap, Secret (PersistentVolumeClaim, ServiceAccount and RBAC objects are accepted and not used)", h.Kind)
	case !slices.Contains(versions, h.APIVersion):
		return doc, false, Errorf(doc.Display, "apiVersion", "%s is not served for %s: want one of %s", quoteOrEmpty(h.APIVersion), h.Kind, strings.Join(versions, ", "))
	}
	// Decode the YAML itself, not its JSON form: the conversion to JSON
	// silently drops duplicated keys, which strict decoding rejects.
	obj, _, err := decoder.Decode(chunk, nil, nil)
	if err != nil {
		if obj = asTektonWebhookStores(h, js, err); obj == nil {
			return doc, false, decodeError(doc.Display, err)
		}
	}
	doc.Object, err = storageVersion(obj)
	if err != nil {
		return doc, false, Errorf(doc.Display, "", "convert %s to its storage version: %v", h.APIVersion, err)
	}
	return doc, false, nil
}

// asTektonWebhookStores is a Tekton object as Tekton's defaulting webhook
// stores it, when strict decoding found only unknown fields: the webhook
// decodes with encoding/json (knative's webhook/json), which matches field
// names case-insensitively, and patches the object to what it decoded. So
// Tekton runs `mountpath:` as `mountPath:`. Nil when the webhook would
// reject the document too, or strictErr is not only unknown fields.
func asTektonWebhookStores(h header, js []byte, strictErr error) runtime.Object {
	strict, ok := runtime.AsStrictDecodingError(strictErr)
	if !ok || !strings.HasPrefix(h.APIVersion, "tekton.dev/") {
		return nil
	}
	for _, e := range strict.Errors() {
		if !strings.HasPrefix(e.Error(), "unknown field ") {
			return nil
		}
	}
	obj, err := scheme.New(schema.FromAPIVersionAndKind(h.APIVersion, h.Kind))
	if err != nil {
		return nil
	}
	if err := knjson.Decode(js, obj, true); err != nil {
		return nil
	}
	return obj
}

// fieldInError finds the field path a decoding error names: strict errors
// say `unknown field "spec.foo"`, type errors `Go struct field
// TaskSpec.spec.steps of type []v1.Step`.
var (
	quotedField = regexp.MustCompile(`(?:unknown|duplicate) field "([^"]+)"`)
	typeField   = regexp.MustCompile(`Go struct field \w+\.([\w.\[\]]+) of type`)
)

func decodeError(display string, err error) *Error {
	if strict, ok := runtime.AsStrictDecodingError(err); ok {
		// Report the first violation; it is the one a user fixes first.
		first := strict.Errors()[0]
		field := ""
		if m := quotedField.FindStringSubmatch(first.Error()); m != nil {
			field = m[1]
		}
		return Errorf(display, field, "%v", first)
	}
	field := ""
	if m := typeField.FindStringSubmatch(err.Error()); m != nil {
		field = m[1]
	}
	return Errorf(display, field, "cannot decode: %v", err)
}

// storageVersion converts older Tekton versions to the one compile works on.
func storageVersion(obj runtime.Object) (runtime.Object, error) {
	ctx := context.Background()
	switch o := obj.(type) {
	case *v1beta1.PipelineRun:
		out := &v1.PipelineRun{}
		return out, o.ConvertTo(ctx, out)
	case *v1beta1.TaskRun:
		out := &v1.TaskRun{}
		return out, o.ConvertTo(ctx, out)
	case *v1beta1.Pipeline:
		out := &v1.Pipeline{}
		return out, o.ConvertTo(ctx, out)
	case *v1beta1.Task:
		out := &v1.Task{}
		return out, o.ConvertTo(ctx, out)
	case *v1alpha1.StepAction:
		out := &v1beta1.StepAction{}
		return out, o.ConvertTo(ctx, out)
	}
	return obj, nil
}

func quoteOrEmpty(s string) string {
	if s == "" {
		return "an empty apiVersion"
	}
	return fmt.Sprintf("%q", s)
}
