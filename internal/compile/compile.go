// Package compile turns a Tekton PipelineRun or TaskRun and the documents it
// references into a Plan, deciding what Tekton's webhook and controllers would.
package compile

import (
	"context"
	"fmt"
	"sync"

	"github.com/tektoncd/pipeline/pkg/apis/config"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	clientset "github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/uuid"
	"knative.dev/pkg/apis"

	"github.com/e7763abc/pod-runner/internal/load"
)

// freshInstallFeatureFlags is the data of config/config-feature-flags.yaml
// in Tekton v1.15.1: the flags a fresh install runs with.
var freshInstallFeatureFlags = map[string]string{
	"coschedule":              "workspaces",
	"disable-creds-init":      "false",
	"await-sidecar-readiness": "true",
	"running-in-environment-with-injected-sidecars":  "true",
	"require-git-ssh-secret-known-hosts":             "false",
	"enable-tekton-oci-bundles":                      "false",
	"enable-api-fields":                              "beta",
	"send-cloudevents-for-runs":                      "true",
	"trusted-resources-verification-no-match-policy": "ignore",
	"enable-provenance-in-status":                    "true",
	"enforce-nonfalsifiability":                      "none",
	"results-from":                                   "termination-message",
	"set-security-context":                           "false",
	"set-security-context-read-only-root-filesystem": "false",
	"keep-pod-on-cancel":                             "false",
	"enable-cel-in-whenexpression":                   "false",
	"enable-artifacts":                               "false",
	"enable-param-enum":                              "false",
	"disable-inline-spec":                            "",
	"enable-concise-resolver-syntax":                 "false",
	"enable-kubernetes-sidecar":                      "false",
	"enable-step-actions":                            "true",
	"enable-wait-exponential-backoff":                "false",
	"enable-termination-message-compression":         "false",
	"enable-informer-cache-transforms":               "true",
}

// WithConfig returns ctx carrying the configuration of a fresh Tekton
// install (feature flags as installed, config-defaults empty), which
// Tekton's defaulting and validation read.
func WithConfig(ctx context.Context) (context.Context, error) {
	return WithClusterConfig(ctx, nil, nil)
}

// WithClusterConfig returns ctx carrying the configuration a cluster's
// Tekton runs with: the data of its feature-flags and config-defaults
// ConfigMaps, read as Tekton reads them (a key left out takes Tekton's
// default). A nil featureFlags is a fresh install's ConfigMap.
func WithClusterConfig(ctx context.Context, featureFlags, defaults map[string]string) (context.Context, error) {
	if featureFlags == nil {
		featureFlags = freshInstallFeatureFlags
	}
	ff, err := config.NewFeatureFlagsFromMap(featureFlags)
	if err != nil {
		return nil, fmt.Errorf("feature flags: %w", err)
	}
	if defaults == nil {
		defaults = map[string]string{}
	}
	d, err := config.NewDefaultsFromMap(defaults)
	if err != nil {
		return nil, fmt.Errorf("config defaults: %w", err)
	}
	// Start from Tekton's complete defaults so that no part of the config is nil.
	cfg := config.FromContextOrDefaults(context.Background())
	cfg.FeatureFlags = ff
	cfg.Defaults = d
	return config.ToContext(ctx, cfg), nil
}

// TektonConfig is the data of the feature-flags and config-defaults
// ConfigMaps among docs (named so, in no namespace or in Tekton's
// tekton-pipelines), nil for one not given: how a run on a machine with no
// cluster is configured as a cluster's Tekton would be.
func TektonConfig(docs []load.Doc) (featureFlags, defaults map[string]string) {
	for _, d := range docs {
		cm, ok := d.Object.(*corev1.ConfigMap)
		if !ok || (cm.Namespace != "" && cm.Namespace != "tekton-pipelines") {
			continue
		}
		switch cm.Name {
		case config.GetFeatureFlagsConfigName():
			featureFlags = cm.Data
		case config.GetDefaultsConfigName():
			defaults = cm.Data
		}
	}
	return featureFlags, defaults
}

// Compile compiles the one PipelineRun or TaskRun among docs, with the
// Pipelines, Tasks, StepActions, ConfigMaps and Secrets it refers to. Invalid
// input is reported as a *load.Error.
func Compile(ctx context.Context, docs []load.Doc, opts Options) (*Compiled, error) {
	ctx, err := WithClusterConfig(ctx, opts.FeatureFlags, opts.Defaults)
	if err != nil {
		return nil, &load.Error{Doc: "Tekton's configuration", Field: "data", Msg: err.Error()}
	}
	var runs []*load.Doc
	for i := range docs {
		if k := docs[i].Kind; k == load.KindPipelineRun || k == load.KindTaskRun {
			runs = append(runs, &docs[i])
		}
	}
	switch len(runs) {
	case 0:
		return nil, load.Errorf("", "", "no PipelineRun or TaskRun among the documents: give exactly one")
	case 1:
	default:
		return nil, load.Errorf(runs[1].Display, "", "a second run (the first is %s): give exactly one PipelineRun or TaskRun", runs[0].Display)
	}
	run := runs[0]
	c := &compiler{ctx: ctx, opts: opts, run: run, remoteTasks: map[string]*v1.Task{}}
	out, err := c.compile(docs)
	if out != nil {
		out.Config = config.FromContextOrDefaults(ctx)
		out.localErr = c.localErr
		out.objs = c.objs
		out.RefSources = c.refSources
		out.StepRefSources = c.stepSources
	}
	return out, err
}

// compile compiles c.run with docs.
func (c *compiler) compile(docs []load.Doc) (*Compiled, error) {
	ctx, run := c.ctx, c.run
	var err error
	switch o := run.Object.(type) {
	case *v1.PipelineRun:
		pr := o.DeepCopy()
		if err := c.identify(&pr.ObjectMeta); err != nil {
			return nil, err
		}
		if c.objs, err = indexDocs(ctx, docs, pr.Namespace, c.opts.Requester != nil, c.opts.Lookup); err != nil {
			return nil, err
		}
		return c.pipelineRun(pr)
	case *v1.TaskRun:
		tr := o.DeepCopy()
		if err := c.identify(&tr.ObjectMeta); err != nil {
			return nil, err
		}
		if c.objs, err = indexDocs(ctx, docs, tr.Namespace, c.opts.Requester != nil, c.opts.Lookup); err != nil {
			return nil, err
		}
		return c.taskRun(tr)
	}
	return nil, fmt.Errorf("%s: unexpected object %T", run.Display, run.Object)
}

// compiler holds what one Compile call works with.
type compiler struct {
	ctx  context.Context
	opts Options
	objs *objects
	run  *load.Doc
	// refSources are where resolvers found the run's Pipeline or Task
	// (key "") and its pipeline tasks' Tasks (Compiled.RefSources).
	refSources map[string]*v1.RefSource
	// stepSources are where resolvers found StepActions
	// (Compiled.StepRefSources).
	stepSources map[string][]*v1.RefSource
	// shared maps a workspace binding to the one whose claim it shares
	// (sharedClaims).
	shared map[string]string
	// remoteTasks are the Tasks resolvers returned, by pipeline task.
	remoteTasks map[string]*v1.Task
	// tekton is the in-process webhook resolved objects are validated
	// with, made when first needed.
	tekton clientset.Interface
	// child is set when compiling a child pipeline's run.
	child *childScope
	// localErr is the first reason the run cannot run on this machine
	// (Compiled.LocalError).
	localErr *load.Error
}

// webhook is the Tekton API that validates resolved objects (webhook).
func (c *compiler) webhook() clientset.Interface {
	if c.tekton == nil {
		c.tekton = webhook(c.ctx)
	}
	return c.tekton
}

// resolvedFrom records where a resolver found the object of key.
func (c *compiler) resolvedFrom(key string, src *v1.RefSource) {
	if src == nil {
		return
	}
	if c.refSources == nil {
		c.refSources = map[string]*v1.RefSource{}
	}
	c.refSources[key] = src
}

// resolvedDoc names a resolved object in errors: the run's field that
// referred to it and the resolver that returned it.
func resolvedDoc(run, field string, resolver v1.ResolverName) string {
	return fmt.Sprintf("%s %s (resolver %q)", run, field, resolver)
}

// noteLocal keeps err as the reason the run cannot run locally, unless one
// is kept already.
func (c *compiler) noteLocal(err *load.Error) {
	if c.localErr == nil {
		c.localErr = err
	}
}

// identify gives the run what the API server gives an object on creation:
// a name from generateName, a namespace, a uid.
func (c *compiler) identify(meta *metav1.ObjectMeta) error {
	if meta.Name == "" {
		if meta.GenerateName == "" {
			return load.Errorf(c.run.Display, "metadata.name", "name or generateName is required")
		}
		meta.Name = generateName(meta.GenerateName)
	}
	if meta.Namespace == "" {
		meta.Namespace = c.opts.Namespace
		if meta.Namespace == "" {
			meta.Namespace = "default"
		}
	}
	if meta.UID == "" {
		meta.UID = uuid.NewUUID()
	}
	return nil
}

// generateName is the API server's name generator
// (k8s.io/apiserver/pkg/storage/names.SimpleNameGenerator): the base cut to
// 58 characters, then 5 random lowercase alphanumerics.
func generateName(base string) string {
	const maxNameLength, randomLength = 63, 5
	if len(base) > maxNameLength-randomLength {
		base = base[:maxNameLength-randomLength]
	}
	return base + utilrand.String(randomLength)
}

// entry is a named object and the document it came from.
type entry[T any] struct {
	obj T
	doc *load.Doc
}

// objects are the documents a run may refer to, by name, in the run's
// namespace.
type objects struct {
	ctx        context.Context // within create, for the webhook's defaults
	resolvable bool
	namespace  string
	// lookup reads what the documents lack (Options.Lookup); looked are
	// the documents it gave, missing the names it found nothing for.
	lookup      Lookup
	looked      []*load.Doc
	missing     map[string]bool
	mu          sync.Mutex
	pipelines   map[string]entry[*v1.Pipeline]
	tasks       map[string]entry[*v1.Task]
	stepActions map[string]entry[*v1beta1.StepAction]
	configMaps  map[string]entry[*corev1.ConfigMap]
	secrets     map[string]entry[*corev1.Secret]
	// given are the ConfigMap and Secret documents in the run's namespace,
	// in the order given; used those the run refers to.
	given []*load.Doc
	used  map[*load.Doc]bool
}

// indexDocs defaults and validates every Tekton definition as the webhook
// does when it is created, and indexes the documents a run may refer to.
// Documents in another namespace than the run's are left out: Tekton would
// not find them.
func indexDocs(ctx context.Context, docs []load.Doc, namespace string, resolvable bool, lookup Lookup) (*objects, error) {
	o := &objects{
		ctx:         apis.WithinCreate(ctx),
		resolvable:  resolvable,
		namespace:   namespace,
		pipelines:   map[string]entry[*v1.Pipeline]{},
		tasks:       map[string]entry[*v1.Task]{},
		stepActions: map[string]entry[*v1beta1.StepAction]{},
		configMaps:  map[string]entry[*corev1.ConfigMap]{},
		secrets:     map[string]entry[*corev1.Secret]{},
		used:        map[*load.Doc]bool{},
		lookup:      lookup,
		missing:     map[string]bool{},
	}
	for i := range docs {
		if err := o.index(&docs[i]); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// index defaults, validates and indexes one document.
func (o *objects) index(d *load.Doc) error {
	create := o.ctx
	var err error
	switch obj := d.Object.(type) {
	case *v1.Pipeline:
		obj = obj.DeepCopy()
		if err = checkPipelineSpec(where{d.Display, "spec"}, &obj.Spec, o.resolvable); err == nil {
			obj.SetDefaults(create)
			if err = validation(d.Display, "", obj.DeepCopy().Validate(create)); err != nil {
				err = withReason(err, graphReason(&obj.Spec))
			}
		}
		if err == nil {
			err = add(o.pipelines, d, obj, &obj.ObjectMeta, o.namespace)
		}
	case *v1.Task:
		obj = obj.DeepCopy()
		obj.SetDefaults(create)
		if err = validation(d.Display, "", obj.DeepCopy().Validate(create)); err == nil {
			err = add(o.tasks, d, obj, &obj.ObjectMeta, o.namespace)
		}
	case *v1beta1.StepAction:
		obj = obj.DeepCopy()
		obj.SetDefaults(create)
		if err = validation(d.Display, "", obj.DeepCopy().Validate(create)); err == nil {
			err = add(o.stepActions, d, obj, &obj.ObjectMeta, o.namespace)
		}
	case *corev1.ConfigMap:
		err = add(o.configMaps, d, obj, &obj.ObjectMeta, o.namespace)
		o.given = append(o.given, d)
	case *corev1.Secret:
		err = add(o.secrets, d, obj, &obj.ObjectMeta, o.namespace)
		o.given = append(o.given, d)
	}
	return err
}

func add[T any](m map[string]entry[T], d *load.Doc, obj T, meta *metav1.ObjectMeta, namespace string) error {
	if meta.Name == "" {
		return load.Errorf(d.Display, "metadata.name", "a %s needs a name to be referred to", d.Kind)
	}
	if meta.Namespace != "" && meta.Namespace != namespace {
		return nil
	}
	if prev, dup := m[meta.Name]; dup {
		return load.Errorf(d.Display, "metadata.name", "%s %q is defined twice (also in %s)", d.Kind, meta.Name, prev.doc.Display)
	}
	m[meta.Name] = entry[T]{obj: obj, doc: d}
	return nil
}
