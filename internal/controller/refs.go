package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/e7763abc/pod-runner/internal/load"
)

// gather returns the documents compile.Compile needs for pr: the run and
// every Pipeline, Task, StepAction, ConfigMap and Secret it refers to by
// name, read from the run's namespace. A missing object is left out:
// Compile then reports it as invalid input, with the same message a local
// run gives. Other read errors are returned (the reconcile is retried).
func gather(ctx context.Context, r client.Reader, pr *v1.PipelineRun) ([]load.Doc, error) {
	ns := pr.Namespace
	docs := []load.Doc{doc(load.KindPipelineRun, pr.Name, pr.DeepCopy())}
	get := func(kind, name string, obj client.Object) (bool, error) {
		if err := r.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
			if apierrors.IsNotFound(err) {
				return false, nil
			}
			return false, fmt.Errorf("get %s %s/%s: %w", kind, ns, name, err)
		}
		docs = append(docs, doc(kind, name, obj))
		return true, nil
	}

	spec := pr.Spec.PipelineSpec
	if ref := pr.Spec.PipelineRef; ref != nil && ref.Name != "" && ref.Resolver == "" {
		p := &v1.Pipeline{}
		found, err := get(load.KindPipeline, ref.Name, p)
		if err != nil {
			return nil, err
		}
		if found {
			spec = &p.Spec
		}
	}
	if spec == nil {
		return docs, nil
	}

	var taskSpecs []*v1.TaskSpec
	seen := map[string]bool{}
	for _, pt := range append(append([]v1.PipelineTask{}, spec.Tasks...), spec.Finally...) {
		switch ref := pt.TaskRef; {
		case ref != nil && ref.Name != "" && ref.Resolver == "" && (ref.Kind == "" || ref.Kind == v1.NamespacedTaskKind):
			if seen["Task/"+ref.Name] {
				continue
			}
			seen["Task/"+ref.Name] = true
			t := &v1.Task{}
			found, err := get(load.KindTask, ref.Name, t)
			if err != nil {
				return nil, err
			}
			if found {
				taskSpecs = append(taskSpecs, &t.Spec)
			}
		case pt.TaskSpec != nil:
			taskSpecs = append(taskSpecs, &pt.TaskSpec.TaskSpec)
		}
	}

	// What a task's steps and the run's workspaces read: StepActions by
	// name, ConfigMaps and Secrets of env, envFrom and workspace bindings.
	holders := []any{pr.Spec.Workspaces, pr.Spec.TaskRunSpecs}
	for _, ts := range taskSpecs {
		holders = append(holders, ts)
		for _, s := range ts.Steps {
			if s.Ref == nil || s.Ref.Name == "" || s.Ref.Resolver != "" || seen["StepAction/"+s.Ref.Name] {
				continue
			}
			seen["StepAction/"+s.Ref.Name] = true
			sa := &v1beta1.StepAction{}
			found, err := get(load.KindStepAction, s.Ref.Name, sa)
			if err != nil {
				return nil, err
			}
			if found {
				holders = append(holders, &sa.Spec)
			}
		}
	}
	cms, secrets := map[string]bool{}, map[string]bool{}
	for _, h := range holders {
		if err := volumeSources(h, cms, secrets); err != nil {
			return nil, err
		}
	}
	for _, name := range sortedNames(cms) {
		if _, err := get(load.KindConfigMap, name, &corev1.ConfigMap{}); err != nil {
			return nil, err
		}
	}
	for _, name := range sortedNames(secrets) {
		if _, err := get(load.KindSecret, name, &corev1.Secret{}); err != nil {
			return nil, err
		}
	}
	return docs, nil
}

// doc wraps a cluster object as compile reads a document, named
// "cluster (Kind/name)" in messages.
func doc(kind, name string, obj client.Object) load.Doc {
	return load.Doc{Display: fmt.Sprintf("cluster (%s/%s)", kind, name), File: "cluster", Kind: kind, Name: name, Object: obj}
}

// volumeSources collects the ConfigMap and Secret names v refers to, found
// by field name in its JSON form wherever they appear (env valueFrom,
// envFrom, workspace bindings, volumes of a task): configMapKeyRef,
// configMapRef and configMap hold "name"; secretKeyRef and secretRef hold
// "name", secret holds "secretName". Names still holding a $(param) are
// left to Compile.
func volumeSources(v any, cms, secrets map[string]bool) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("find referenced ConfigMaps and Secrets: %w", err)
	}
	var tree any
	if err := json.Unmarshal(b, &tree); err != nil {
		return fmt.Errorf("find referenced ConfigMaps and Secrets: %w", err)
	}
	add := func(m map[string]bool, obj any, field string) {
		if o, ok := obj.(map[string]any); ok {
			if name, ok := o[field].(string); ok && name != "" && !strings.Contains(name, "$(") {
				m[name] = true
			}
		}
	}
	var walk func(any)
	walk = func(n any) {
		switch t := n.(type) {
		case map[string]any:
			for k, v := range t {
				switch k {
				case "configMapKeyRef", "configMapRef", "configMap":
					add(cms, v, "name")
				case "secretKeyRef", "secretRef":
					add(secrets, v, "name")
				case "secret":
					add(secrets, v, "secretName")
				}
				walk(v)
			}
		case []any:
			for _, v := range t {
				walk(v)
			}
		}
	}
	walk(tree)
	return nil
}

func sortedNames(m map[string]bool) []string { return slices.Sorted(maps.Keys(m)) }
