package podspec

import (
	"slices"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/pod"
	corev1 "k8s.io/api/core/v1"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// runPodTemplate is the run's podTemplate (a PipelineRun's
// taskRunTemplate.podTemplate, a TaskRun's podTemplate, config-defaults'
// default-pod-template merged in by defaulting): the one Pod of the run is
// built with it, as Tekton builds each TaskRun's.
func (b *builder) runPodTemplate() *pod.Template {
	if pr := b.c.PipelineRun; pr != nil {
		return pr.Spec.TaskRunTemplate.PodTemplate
	}
	if tr := b.c.TaskRun; tr != nil {
		return tr.Spec.PodTemplate
	}
	return nil
}

// applyPodTemplate sets the Pod's fields as Tekton's pod builder sets them
// from a podTemplate: scheduling (nodeSelector, tolerations, affinity,
// topology spread, scheduler, priority class, runtime class), the pod's
// securityContext, image pull secrets, host network and users, DNS, host
// aliases, service links and the token's automount. A TaskRun's own
// podTemplate (taskRunSpecs) that differs in these cannot apply to one
// Pod: the run's does; its env and volumes are per task (taskEnv,
// TaskVolumes).
func applyPodTemplate(spec *corev1.PodSpec, t *pod.Template) {
	if t == nil {
		return
	}
	spec.NodeSelector = t.NodeSelector
	spec.Tolerations = t.Tolerations
	spec.Affinity = t.Affinity
	spec.SecurityContext = t.SecurityContext
	spec.RuntimeClassName = t.RuntimeClassName
	spec.AutomountServiceAccountToken = t.AutomountServiceAccountToken
	spec.SchedulerName = t.SchedulerName
	spec.HostNetwork = t.HostNetwork
	spec.HostUsers = t.HostUsers
	spec.DNSConfig = t.DNSConfig
	spec.EnableServiceLinks = t.EnableServiceLinks
	spec.ImagePullSecrets = t.ImagePullSecrets
	spec.HostAliases = t.HostAliases
	spec.TopologySpreadConstraints = t.TopologySpreadConstraints
	if t.DNSPolicy != nil {
		spec.DNSPolicy = *t.DNSPolicy
	}
	if t.PriorityClassName != nil {
		spec.PriorityClassName = *t.PriorityClassName
	}
}

// taskEnv is the env a task's podTemplate adds to its step containers
// (after their own, as Tekton appends it), without config-defaults'
// default-forbidden-env.
func (b *builder) taskEnv(t *planpb.Task) []corev1.EnvVar {
	tr := b.c.TaskRuns[t.GetName()]
	if tr == nil || tr.Spec.PodTemplate == nil {
		return nil
	}
	var forbidden []string
	if b.c.Config != nil && b.c.Config.Defaults != nil {
		forbidden = b.c.Config.Defaults.DefaultForbiddenEnv
	}
	var out []corev1.EnvVar
	for _, e := range tr.Spec.PodTemplate.Env {
		if !slices.Contains(forbidden, e.Name) {
			out = append(out, e)
		}
	}
	return out
}
