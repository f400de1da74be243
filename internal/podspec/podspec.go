// Package podspec builds the one Pod that runs a compiled PipelineRun or
// TaskRun (the layout internal/podlayout describes) and the objects it needs.
package podspec

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"knative.dev/pkg/kmeta"

	"github.com/e7763abc/pod-runner/internal/compile"
	"github.com/e7763abc/pod-runner/internal/load"
	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/internal/results"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// DefaultImage is the pod-runner image the Makefile builds locally.
const DefaultImage = "localhost/pod-runner:dev"

// Labels and annotations of the run's Pod.
const (
	// ManagedByLabel is Kubernetes' app.kubernetes.io/managed-by, which
	// Tekton sets on the Pods it creates.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedBy      = "pod-runner"
	// InitContainerTypeAnnotation keeps a finished init container, and its
	// log, under podman kube play.
	InitContainerTypeAnnotation = "io.podman.annotations.init.container.type"
)

// maxEnvString is Linux's MAX_ARG_STRLEN: the longest "NAME=value" string
// (with its NUL) execve accepts; a longer one fails the supervisor's start.
const maxEnvString = 32 * 4096

// Options are the injector's choices.
type Options struct {
	// Image is the pod-runner image (DefaultImage when empty).
	Image string
	// Resolver looks up the entrypoint of steps that give neither command
	// nor script; nil refuses such steps.
	Resolver Resolver
	// NativeSidecar runs the supervisor as a native sidecar (an init
	// container with restartPolicy Always, Kubernetes 1.29 and later)
	// rather than as the first container: tools that show a Pod's
	// containers as a TaskRun's steps (tkn, the Dashboard) then never show
	// it or its status stream. podman 4.3 runs init containers to their
	// end before the others start, so under podman it stays a container.
	NativeSidecar bool
	// HostPaths lets a workspace bound to a directory of this machine
	// (pod-runner run --workspace) be a hostPath volume: for a Pod that
	// runs here (podman), never for a cluster's.
	HostPaths bool
	// Credentials reads ServiceAccounts' Secrets for Tekton's credential
	// initialisation; nil: none (creds.go).
	Credentials CredentialSource
}

// Build returns a v1 List: the ConfigMap and Secret documents the run
// refers to, unchanged (podman kube play finds them only there; a cluster
// has its own), followed by the Pod, which refers to them by name.
func Build(ctx context.Context, c *compile.Compiled, opts Options) (*metav1.List, error) {
	pod, err := Pod(ctx, c, opts)
	if err != nil {
		return nil, err
	}
	list := &metav1.List{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "List"}}
	for _, o := range append(c.Documents(), pod) {
		list.Items = append(list.Items, runtime.RawExtension{Object: o})
	}
	return list, nil
}

// builder holds one Pod under construction.
type builder struct {
	ctx  context.Context
	c    *compile.Compiled
	opts Options
	plan *planpb.Plan
	uid  string
	pod  *corev1.Pod
	// volumes maps a plan volume to its Pod volume, added on first use.
	volumes map[string]string
	// bindings are the run's workspace bindings by name (templates and
	// sources the Plan does not carry).
	bindings map[string]*corev1.PersistentVolumeClaimTemplate
	// sources are the run's projected and CSI workspace bindings by name.
	sources map[string]corev1.VolumeSource
	// taskState are the supervisor's mounts of every task's results and
	// steps volumes, under StateDir/TaskDir(task).
	taskState []corev1.VolumeMount
}

// Pod builds the run's Pod. c.Plan is not changed: the Plan the supervisor
// gets is a copy with the looked-up entrypoints.
func Pod(ctx context.Context, c *compile.Compiled, opts Options) (*corev1.Pod, error) {
	if err := c.PodError(); err != nil {
		return nil, err
	}
	if opts.Image == "" {
		opts.Image = DefaultImage
	}
	b := &builder{
		ctx: ctx, c: c, opts: opts,
		plan:     proto.Clone(c.Plan).(*planpb.Plan),
		uid:      c.Plan.GetUid(),
		volumes:  map[string]string{},
		bindings: map[string]*corev1.PersistentVolumeClaimTemplate{},
		sources:  map[string]corev1.VolumeSource{},
	}
	b.collectClaimTemplates()
	b.pod = &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: b.meta(),
		Spec: corev1.PodSpec{
			RestartPolicy:      corev1.RestartPolicyNever,
			ServiceAccountName: b.serviceAccount(),
		},
	}
	applyPodTemplate(&b.pod.Spec, b.runPodTemplate())
	b.addVolume(corev1.Volume{Name: podlayout.VolumeName(podlayout.BinVolume, b.uid), VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	b.addVolume(corev1.Volume{Name: podlayout.VolumeName(podlayout.RunVolume, b.uid), VolumeSource: memory()})
	b.addVolume(corev1.Volume{Name: podlayout.VolumeName(podlayout.StateVolume, b.uid), VolumeSource: memory()})

	var steps []corev1.Container
	for _, t := range b.plan.AllTasks() {
		cs, err := b.taskContainers(t)
		if err != nil {
			return nil, err
		}
		steps = append(steps, cs...)
	}
	sup, err := b.supervisor()
	if err != nil {
		return nil, err
	}
	b.pod.Spec.InitContainers = []corev1.Container{b.initContainer()}
	if opts.NativeSidecar {
		always := corev1.ContainerRestartPolicyAlways
		sup.RestartPolicy = &always
		sup.Command = append(sup.Command, "--native-sidecar")
		b.pod.Spec.InitContainers = append(b.pod.Spec.InitContainers, sup)
		b.pod.Spec.Containers = steps
	} else {
		b.pod.Spec.Containers = append([]corev1.Container{sup}, steps...)
	}
	if err := unique(b.pod); err != nil {
		return nil, err
	}
	return b.pod, nil
}

func memory() corev1.VolumeSource {
	return corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}
}

func (b *builder) addVolume(v corev1.Volume) { b.pod.Spec.Volumes = append(b.pod.Spec.Volumes, v) }

// meta is the Pod's name, labels and annotations: the run's own, plus
// those Tekton puts on the Pods of a run (pkg/pod makeLabels) for the run as
// a whole, since one Pod runs every task.
func (b *builder) meta() metav1.ObjectMeta {
	labels := map[string]string{}
	annotations := map[string]string{}
	if pr := b.c.PipelineRun; pr != nil {
		maps.Copy(labels, pr.Labels)
		maps.Copy(annotations, pr.Annotations)
		labels[pipeline.PipelineRunLabelKey] = pr.Name
		labels[pipeline.PipelineRunUIDLabelKey] = string(pr.UID)
		if labels[pipeline.PipelineLabelKey] == "" && b.plan.GetPipelineName() != "" {
			labels[pipeline.PipelineLabelKey] = b.plan.GetPipelineName()
		}
	} else if tr := b.c.TaskRun; tr != nil {
		maps.Copy(labels, tr.Labels)
		maps.Copy(annotations, tr.Annotations)
		labels[pipeline.TaskRunLabelKey] = tr.Name
		labels[pipeline.TaskRunUIDLabelKey] = string(tr.UID)
		if tr.Spec.TaskRef != nil && tr.Spec.TaskRef.Name != "" && labels[pipeline.TaskLabelKey] == "" {
			labels[pipeline.TaskLabelKey] = tr.Spec.TaskRef.Name
		}
	}
	labels[ManagedByLabel] = ManagedBy
	// Tekton drops these from Pods: they describe the run object.
	delete(annotations, ManagedByLabel)
	delete(annotations, "kubectl.kubernetes.io/last-applied-configuration")
	annotations[InitContainerTypeAnnotation] = "always"
	return metav1.ObjectMeta{
		// The run's name, within the 63 characters a hostname allows
		// (podman names the pod's hostname after it), as Tekton shortens
		// child names.
		Name:        kmeta.ChildName(b.plan.GetName(), ""),
		Namespace:   b.plan.GetNamespace(),
		Labels:      labels,
		Annotations: annotations,
	}
}

// serviceAccount is the run's service account: one Pod has one.
func (b *builder) serviceAccount() string {
	if pr := b.c.PipelineRun; pr != nil {
		return pr.Spec.TaskRunTemplate.ServiceAccountName
	}
	if tr := b.c.TaskRun; tr != nil {
		return tr.Spec.ServiceAccountName
	}
	return ""
}

func (b *builder) initContainer() corev1.Container {
	return corev1.Container{
		Name:            podlayout.InitContainer,
		Image:           b.opts.Image,
		ImagePullPolicy: corev1.PullIfNotPresent,
		Command:         []string{podlayout.ImageBinary, "init", podlayout.BinDir},
		VolumeMounts: []corev1.VolumeMount{
			{Name: podlayout.VolumeName(podlayout.BinVolume, b.uid), MountPath: podlayout.BinDir},
		},
	}
}

// supervisor is the first container (or, NativeSidecar, the init
// container after the one that copies the binary): it runs the Plan (with looked-up
// entrypoints) and requests the run's peak of shared resources.
func (b *builder) supervisor() (corev1.Container, error) {
	raw, err := proto.Marshal(b.plan)
	if err != nil {
		return corev1.Container{}, fmt.Errorf("encode plan: %w", err)
	}
	enc := podlayout.EncodePlan(raw)
	if n := len(podlayout.EnvPlan) + 1 + len(enc) + 1; n > maxEnvString {
		return corev1.Container{}, load.Errorf("", "", "the plan takes %d bytes in the %s environment variable, over Linux's %d-byte limit on one variable: the run has too many tasks for one Pod's environment", n, podlayout.EnvPlan, maxEnvString)
	}
	peak, err := Peak(b.plan)
	if err != nil {
		return corev1.Container{}, load.Errorf("", "", "compute resources: %v", err)
	}
	c := corev1.Container{
		Name:            podlayout.SupervisorContainer,
		Image:           b.opts.Image,
		ImagePullPolicy: corev1.PullIfNotPresent,
		Command:         []string{podlayout.ImageBinary, "supervise"},
		Env:             []corev1.EnvVar{{Name: podlayout.EnvPlan, Value: enc}},
		VolumeMounts: append([]corev1.VolumeMount{
			{Name: podlayout.VolumeName(podlayout.RunVolume, b.uid), MountPath: podlayout.RunDir},
			{Name: podlayout.VolumeName(podlayout.StateVolume, b.uid), MountPath: podlayout.StateDir},
		}, b.taskState...),
		TerminationMessagePath: podlayout.TerminationLog,
		// A supervisor that dies before writing its status (an uncaught
		// panic, a kill) still leaves a message: the tail of its log.
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
	if len(peak) > 0 {
		c.Resources.Requests = peak
	}
	return c, nil
}

// podPaths are a task's paths inside its step containers.
type podPaths struct{ t *planpb.Task }

func (p podPaths) ResultsDir() string         { return podlayout.ResultsDir }
func (p podPaths) StepDir(step string) string { return podlayout.StepsDir + "/step-" + step }
func (p podPaths) ArtifactsDir() string       { return podlayout.ArtifactsDir }
func (p podPaths) Workspace(name string) (string, bool) {
	for _, b := range p.t.GetWorkspaces() {
		if b.GetName() == name {
			return mountPath(p.t, name), true
		}
	}
	return mountPath(p.t, name), false
}

// mountPath is where a task's workspace is mounted: its declaration's
// mountPath, or Tekton's default /workspace/NAME.
func mountPath(t *planpb.Task, name string) string {
	for _, d := range t.GetSpec().GetWorkspaces() {
		if d.GetName() == name && d.GetMountPath() != "" {
			return d.GetMountPath()
		}
	}
	return podlayout.WorkspaceDir + "/" + name
}

// taskContainers are a task's step containers, then its sidecars'. Images
// and env references must be known when the Pod is created: they are
// substituted with what is known at compile time (params that do not wait
// for results, contexts). A sidecar's container runs `pod-runner step` too:
// the supervisor tells it when to start the sidecar and when to stop it.
func (b *builder) taskContainers(t *planpb.Task) ([]corev1.Container, error) {
	static, err := results.TaskSteps(t.GetSpec(), t.GetParams(), t.GetContext(), podPaths{t})
	if err != nil {
		return nil, load.Errorf("", "", "task %q: %v", t.GetName(), err)
	}
	spec := t.GetSpec()
	// Tekton substitutes sidecars as it does steps.
	asSteps := &planpb.TaskSpec{Params: spec.GetParams(), Results: spec.GetResults(), Workspaces: spec.GetWorkspaces(), Steps: spec.GetSidecars()}
	staticSidecars, err := results.TaskSteps(asSteps, t.GetParams(), t.GetContext(), podPaths{t})
	if err != nil {
		return nil, load.Errorf("", "", "task %q: sidecars: %v", t.GetName(), err)
	}
	mounts, isolated, err := b.taskMounts(t)
	if err != nil {
		return nil, err
	}
	own, err := b.taskOwnVolumes(t)
	if err != nil {
		return nil, err
	}
	creds, err := b.credentials(t)
	if err != nil {
		return nil, err
	}
	steps, sidecars, err := b.securityContexts(t)
	if err != nil {
		return nil, err
	}
	runs := b.runVolumes(t)
	var out []corev1.Container
	for i, s := range spec.GetSteps() {
		stepName := results.StepName(s.GetName(), i)
		where := fmt.Sprintf("task %q, step %q", t.GetName(), stepName)
		m, err := own.mounts(isolated.append(append(slices.Clip(mounts), runs.mounts(i)...), s), false, i, where)
		if err != nil {
			return nil, err
		}
		c, err := b.container(s, static[i], podlayout.StepContainer(t.GetName(), stepName), where, m)
		if err != nil {
			return nil, err
		}
		if i < len(steps) {
			c.SecurityContext = steps[i]
		}
		c.Env = append(c.Env, b.taskEnv(t)...)
		if creds != nil {
			c.VolumeMounts = append(c.VolumeMounts, creds.mounts...)
			c.VolumeMounts = append(c.VolumeMounts, b.credsDir(t, i))
			for _, a := range creds.args {
				c.Args = append(c.Args, "--creds="+a)
			}
		}
		out = append(out, c)
	}
	for i, s := range spec.GetSidecars() {
		name := results.StepName(s.GetName(), i)
		where := fmt.Sprintf("task %q, sidecar %q", t.GetName(), name)
		m, err := own.mounts(isolated.append(sidecarMounts(mounts), s), true, i, where)
		if err != nil {
			return nil, err
		}
		c, err := b.container(s, staticSidecars[i], podlayout.SidecarContainer(t.GetName(), name), where, m)
		if err != nil {
			return nil, err
		}
		if i < len(sidecars) {
			c.SecurityContext = sidecars[i]
		}
		out = append(out, c)
	}
	return out, nil
}

// securityContexts are the securityContext of each of the task's steps
// (its stepTemplate's merged in) and sidecars, which their containers
// get as Tekton's pod gives them.
func (b *builder) securityContexts(t *planpb.Task) (steps, sidecars []*corev1.SecurityContext, err error) {
	ts := b.c.TaskSpecs[t.GetName()]
	if ts == nil {
		return nil, nil, nil
	}
	merged, err := v1.MergeStepsWithStepTemplate(ts.StepTemplate, ts.Steps)
	if err != nil {
		return nil, nil, load.Errorf("", "", "task %q: merge stepTemplate into steps: %v", t.GetName(), err)
	}
	for _, s := range merged {
		steps = append(steps, s.SecurityContext)
	}
	for _, s := range ts.Sidecars {
		sidecars = append(sidecars, s.SecurityContext)
	}
	return steps, sidecars, nil
}

// sidecarMounts are a task's mounts for its sidecars: as Tekton mounts
// them, the task's workspaces but not its /workspace, /tekton/home,
// results and steps (pod.go's implicit mounts are for steps only); and
// what `pod-runner step` needs, the bin and run volumes.
func sidecarMounts(steps []corev1.VolumeMount) []corev1.VolumeMount {
	var out []corev1.VolumeMount
	for _, m := range steps {
		switch m.MountPath {
		case podlayout.ResultsDir, podlayout.StepsDir, podlayout.WorkspaceDir, podlayout.HomeDir:
			continue
		}
		out = append(out, m)
	}
	return out
}

// container is the container of a step or sidecar s (st: s substituted
// with what is known at compile time).
func (b *builder) container(s, st *planpb.Step, name, where string, mounts []corev1.VolumeMount) (corev1.Container, error) {
	image := st.GetImage()
	if refersToRunTime(image) {
		return corev1.Container{}, load.Errorf("", "", "%s: image %q depends on a value known only at run time; in pod mode every image must be known when the Pod is created", where, s.GetImage())
	}
	if len(s.GetCommand()) == 0 && s.GetScript() == "" {
		var err error
		if image, err = b.resolve(s, image, where); err != nil {
			return corev1.Container{}, err
		}
	}
	env := []corev1.EnvVar{{Name: podlayout.EnvContainer, Value: name}}
	for _, e := range st.GetEnv() {
		ref := e.GetValueFrom()
		if ref == nil {
			continue
		}
		if refersToRunTime(ref.GetName()) || refersToRunTime(ref.GetKey()) {
			return corev1.Container{}, load.Errorf("", "", "%s: env %s refers to %q/%q, known only at run time; in pod mode the kubelet resolves it when the Pod is created", where, e.GetName(), ref.GetName(), ref.GetKey())
		}
		env = append(env, keyRefEnv(e.GetName(), ref))
	}
	var envFrom []corev1.EnvFromSource
	for _, f := range st.GetEnvFrom() {
		if refersToRunTime(f.GetName()) {
			return corev1.Container{}, load.Errorf("", "", "%s: envFrom refers to %q, known only at run time; in pod mode the kubelet resolves it when the Pod is created", where, f.GetName())
		}
		envFrom = append(envFrom, envFromSource(f))
	}
	res, err := stepResources(s)
	if err != nil {
		return corev1.Container{}, load.Errorf("", "", "%s: %v", where, err)
	}
	return corev1.Container{
		Name:    name,
		Image:   image,
		Command: []string{podlayout.Binary, "step"},
		Env:     env,
		EnvFrom: envFrom,
		// A copy: mounts may be the task's own slice, shared by its other
		// containers, and what is appended to one must not reach the rest.
		VolumeMounts: slices.Clone(mounts),
		Resources:    res,
	}, nil
}

// resolve looks up the entrypoint of a step that names no command, puts it
// into the Plan's step, and returns the image the container runs.
func (b *builder) resolve(s *planpb.Step, image, where string) (string, error) {
	if b.opts.Resolver == nil {
		return "", load.Errorf("", "", "%s: image %q: the step has no command and no script, and image lookups are off", where, image)
	}
	ep, err := b.opts.Resolver.Entrypoint(b.ctx, image, len(s.GetArgs()) > 0)
	if err != nil {
		return "", load.Errorf("", "", "%s: the step has no command: the entrypoint of image %q is needed: %v", where, image, err)
	}
	s.Command = ep.Command
	return ep.Image, nil
}

func refersToRunTime(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '$' && s[i+1] == '(' {
			return true
		}
	}
	return false
}

func keyRefEnv(name string, ref *planpb.KeyRef) corev1.EnvVar {
	opt := ref.GetOptional()
	if ref.GetKind() == planpb.KeyRef_SECRET {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: ref.GetName()}, Key: ref.GetKey(), Optional: &opt}}}
	}
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: ref.GetName()}, Key: ref.GetKey(), Optional: &opt}}}
}

func envFromSource(f *planpb.EnvFrom) corev1.EnvFromSource {
	opt := f.GetOptional()
	ref := corev1.LocalObjectReference{Name: f.GetName()}
	if f.GetKind() == planpb.KeyRef_SECRET {
		return corev1.EnvFromSource{Prefix: f.GetPrefix(), SecretRef: &corev1.SecretEnvSource{LocalObjectReference: ref, Optional: &opt}}
	}
	return corev1.EnvFromSource{Prefix: f.GetPrefix(), ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: ref, Optional: &opt}}
}

// stepResources are a step container's limits, as the step declares them,
// and its requests: zero for shared resources it limits (their request is
// on the supervisor, at the run's peak; left unset, Kubernetes would
// default the request to the limit), as declared for the others.
func stepResources(s *planpb.Step) (corev1.ResourceRequirements, error) {
	var r corev1.ResourceRequirements
	for _, k := range sortedKeys(s.GetLimits()) {
		q, err := resource.ParseQuantity(s.GetLimits()[k])
		if err != nil {
			return r, fmt.Errorf("limits.%s: %w", k, err)
		}
		if r.Limits == nil {
			r.Limits = corev1.ResourceList{}
		}
		r.Limits[corev1.ResourceName(k)] = q
		if isShared(corev1.ResourceName(k)) {
			if r.Requests == nil {
				r.Requests = corev1.ResourceList{}
			}
			r.Requests[corev1.ResourceName(k)] = resource.MustParse("0")
		}
	}
	for _, k := range sortedKeys(s.GetRequests()) {
		if isShared(corev1.ResourceName(k)) {
			continue
		}
		q, err := resource.ParseQuantity(s.GetRequests()[k])
		if err != nil {
			return r, fmt.Errorf("requests.%s: %w", k, err)
		}
		if r.Requests == nil {
			r.Requests = corev1.ResourceList{}
		}
		r.Requests[corev1.ResourceName(k)] = q
	}
	return r, nil
}

// unique checks that no two containers or volumes got the same name, which
// deterministic shortening makes possible only for long or clashing names.
func unique(pod *corev1.Pod) error {
	seen := map[string]bool{}
	for _, c := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		if seen[c.Name] {
			return load.Errorf("", "", "two containers of the Pod would both be named %q: rename a task or a step", c.Name)
		}
		seen[c.Name] = true
	}
	seen = map[string]bool{}
	for _, v := range pod.Spec.Volumes {
		if seen[v.Name] {
			return load.Errorf("", "", "two volumes of the Pod would both be named %q: rename a task or a workspace", v.Name)
		}
		seen[v.Name] = true
	}
	return nil
}
