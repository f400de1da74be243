// Package admission opts PipelineRuns in to pod-runner by namespace: a
// mutating admission webhook that sets spec.managedBy on the runs created
// in a labelled namespace, so that nobody edits every run, with the TLS it
// needs bootstrapped by the controller itself (tls.go).
package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

const (
	// NamespaceLabel, set to "true" on a namespace, delegates the
	// PipelineRuns created there (the webhook configuration's
	// namespaceSelector).
	NamespaceLabel = "pod-runner.dev/managed"
	// OptOutAnnotation set to "false" on a PipelineRun keeps it with
	// Tekton's controller in a labelled namespace.
	OptOutAnnotation = "pod-runner.dev/managed"
	// Path is where the webhook serves.
	Path = "/mutate-tekton-dev-v1-pipelinerun"
)

// Delegator is the webhook's handler: a PipelineRun being created that
// names no manager and does not opt out gets spec.managedBy set to
// ManagedBy. Everything else is allowed unchanged: a run that names a
// manager keeps it (spec.managedBy is immutable once set, and the author
// chose), an update is never touched.
type Delegator struct {
	// ManagedBy is the value set (the controller's).
	ManagedBy string
}

var _ admission.Handler = Delegator{}

// Handle answers one AdmissionReview.
func (d Delegator) Handle(_ context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create {
		return admission.Allowed("only a run being created is delegated")
	}
	if v := req.RequestKind; v != nil && v.Version != v1.SchemeGroupVersion.Version {
		// Tekton's conversion back to the version asked for drops
		// spec.managedBy: the patch would not stick.
		resp := admission.Allowed("not delegated: created through " + v.Group + "/" + v.Version)
		resp.Warnings = []string{fmt.Sprintf("pod-runner: a PipelineRun created through %s/%s keeps no spec.managedBy (Tekton's conversion drops it): create it through tekton.dev/v1 for pod-runner to run it", v.Group, v.Version)}
		return resp
	}
	var pr v1.PipelineRun
	if err := json.Unmarshal(req.Object.Raw, &pr); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decode the PipelineRun: %w", err))
	}
	switch {
	case pr.Spec.ManagedBy != nil:
		return admission.Allowed("spec.managedBy is set: " + *pr.Spec.ManagedBy)
	case pr.Annotations[OptOutAnnotation] == "false":
		return admission.Allowed("opted out (" + OptOutAnnotation + ": \"false\")")
	}
	return admission.Patched("delegated to "+d.ManagedBy,
		jsonpatch.JsonPatchOperation{Operation: "add", Path: "/spec/managedBy", Value: d.ManagedBy})
}
