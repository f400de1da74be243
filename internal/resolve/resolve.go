// Package resolve answers Tekton's remote resolution requests in-process,
// with Tekton's own git, http, bundles, cluster and hub resolvers, so that a
// run on a machine with no Tekton controller gets the Tasks, Pipelines and
// StepActions its refs name from where a cluster's resolvers would.
package resolve

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/resolution/v1beta1"
	clientset "github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	pipelineclient "github.com/tektoncd/pipeline/pkg/client/injection/client"
	"github.com/tektoncd/pipeline/pkg/remoteresolution/resolver/bundle"
	"github.com/tektoncd/pipeline/pkg/remoteresolution/resolver/cluster"
	"github.com/tektoncd/pipeline/pkg/remoteresolution/resolver/framework"
	"github.com/tektoncd/pipeline/pkg/remoteresolution/resolver/git"
	"github.com/tektoncd/pipeline/pkg/remoteresolution/resolver/http"
	"github.com/tektoncd/pipeline/pkg/remoteresolution/resolver/hub"
	"github.com/tektoncd/pipeline/pkg/remoteresolution/resource"
	"github.com/tektoncd/pipeline/pkg/resolution/common"
	resolutionframework "github.com/tektoncd/pipeline/pkg/resolution/resolver/framework"
	gitresolution "github.com/tektoncd/pipeline/pkg/resolution/resolver/git"
	"go.uber.org/zap"
	"k8s.io/client-go/kubernetes"
	kubeclient "knative.dev/pkg/client/injection/kube/client"
	"knative.dev/pkg/logging"
)

// Timeout is how long one resolution may take when its resolver sets no
// timeout of its own: the ResolutionRequest reconciler's maximum.
const Timeout = time.Minute

// FreshInstallConfigs are the data of the resolvers' ConfigMaps in Tekton
// v1.15.1's config/resolvers: what a fresh install's resolvers run with
// (their defaults: a bundle's ServiceAccount, the hub's type, timeouts).
var FreshInstallConfigs = map[string]map[string]string{
	"bundleresolver-config": {"default-service-account": "default", "default-kind": "task"},
	"git-resolver-config": {
		"fetch-timeout": "1m", "default-url": "https://github.com/tektoncd/catalog.git", "default-revision": "main",
		"scm-type": "github", "server-url": "", "api-token-secret-name": "", "api-token-secret-key": "",
		"api-token-secret-namespace": "default", "default-org": "",
	},
	"http-resolver-config": {"fetch-timeout": "1m"},
	"hubresolver-config": {
		"default-tekton-hub-catalog": "Tekton", "default-artifact-hub-task-catalog": "tekton-catalog-tasks",
		"default-artifact-hub-pipeline-catalog": "tekton-catalog-pipelines", "default-kind": "task", "default-type": "artifact",
	},
	"cluster-resolver-config": {"default-kind": "task", "default-namespace": "", "allowed-namespaces": "", "blocked-namespaces": ""},
}

// Options are what the resolvers read besides a request's params.
type Options struct {
	// Configs are the resolvers' ConfigMaps by name (git-resolver-config,
	// bundleresolver-config, http-resolver-config, hubresolver-config,
	// cluster-resolver-config), as a cluster's resolvers deployment reads
	// them from its namespace; one not given is FreshInstallConfigs'.
	Configs map[string]map[string]string
	// Kube serves the Secrets the resolvers read (a git token, http basic
	// auth, registry credentials through the ServiceAccount).
	Kube kubernetes.Interface
	// Tekton serves the cluster resolver; nil: there is no cluster, and
	// the cluster resolver is not offered.
	Tekton clientset.Interface
	// ArtifactHubURL and TektonHubURL are the hubs the hub resolver asks
	// (the resolvers deployment's ARTIFACT_HUB_API and TEKTON_HUB_API);
	// hubresolver-config may list others.
	ArtifactHubURL, TektonHubURL string
	// FileURLs lets the git resolver clone file:// repositories. Tekton's
	// resolver refuses local paths: on a shared controller they would let
	// a run read the controller's disk. On one's own machine they are the
	// user's own repositories.
	FileURLs bool
}

// Requester is a resource.Requester that resolves each request at once
// with the resolver it names, as a cluster's resolvers deployment answers
// the ResolutionRequest Tekton's controller creates for a ref.
type Requester struct {
	opts      Options
	resolvers map[string]framework.Resolver // by resolution.tekton.dev/type
}

var _ resource.Requester = (*Requester)(nil)

// New initialises Tekton's resolvers with opts.
func New(ctx context.Context, opts Options) (*Requester, error) {
	ctx = withClients(ctx, opts)
	all := []framework.Resolver{&git.Resolver{}, &http.Resolver{}, &bundle.Resolver{}, &hub.Resolver{ArtifactHubURL: opts.ArtifactHubURL, TektonHubURL: opts.TektonHubURL}}
	if opts.Tekton != nil {
		all = append(all, &cluster.Resolver{})
	}
	r := &Requester{opts: opts, resolvers: map[string]framework.Resolver{}}
	for _, res := range all {
		if err := res.Initialize(ctx); err != nil {
			return nil, fmt.Errorf("initialise the %s resolver: %w", res.GetName(ctx), err)
		}
		r.resolvers[res.GetSelector(ctx)[common.LabelKeyResolverType]] = res
	}
	return r, nil
}

// Submit resolves req with the resolver called name, as the resolvers'
// reconciler does (framework.Reconciler.resolve): config and request
// namespace in the context, the resolver's timeout, Validate then Resolve,
// and the same errors.
func (r *Requester) Submit(ctx context.Context, name resource.ResolverName, req resource.Request) (resource.ResolvedResource, error) {
	res, ok := r.resolvers[string(name)]
	if !ok {
		if name == cluster.LabelValueClusterResolverType {
			return nil, errors.New("the cluster resolver reads a cluster: give --kubeconfig, or give the object as a document (-f FILE) and refer to it by name")
		}
		return nil, fmt.Errorf("no resolver %q: the resolvers are %s", name, strings.Join(slices.Sorted(maps.Keys(r.resolvers)), ", "))
	}
	payload := req.ResolverPayload()
	spec := payload.ResolutionSpec
	if spec == nil {
		spec = &v1beta1.ResolutionRequestSpec{}
	}
	key := payload.Namespace + "/" + payload.Name
	ctx = r.context(ctx, res, payload)

	params := map[string]string{}
	for _, p := range spec.Params {
		params[p.Name] = p.Value.StringVal
	}
	timeout := Timeout
	if timed, ok := res.(resolutionframework.TimedResolution); ok {
		var err error
		if timeout, err = timed.GetResolutionTimeout(ctx, Timeout, params); err != nil {
			return nil, &common.InvalidRequestError{ResolutionRequestKey: key, Message: err.Error()}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	defer r.allowFileURL(res, params)()
	if err := res.Validate(ctx, spec); err != nil {
		return nil, &common.InvalidRequestError{ResolutionRequestKey: key, Message: err.Error()}
	}
	out, err := res.Resolve(ctx, spec)
	if err == nil {
		err = resolutionframework.ValidateResolvedResource(out)
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("resolution took longer than %v: %w", timeout, ctx.Err())
	}
	if err != nil {
		return nil, &common.GetResourceError{ResolverName: res.GetName(ctx), Key: key, Original: oneLine{err}}
	}
	return resolved{out}, nil
}

// context is what the reconciler gives Resolve: the resolver's config and
// the request's name and namespace, over the clients it was initialised with.
func (r *Requester) context(ctx context.Context, res framework.Resolver, p resource.ResolverPayload) context.Context {
	ctx = withClients(ctx, r.opts)
	if cw, ok := res.(resolutionframework.ConfigWatcher); ok {
		conf, ok := r.opts.Configs[cw.GetConfigName(ctx)]
		if !ok {
			conf = FreshInstallConfigs[cw.GetConfigName(ctx)]
		}
		ctx = resolutionframework.InjectResolverConfigToContext(ctx, conf)
	}
	ctx = common.InjectRequestNamespace(ctx, p.Namespace)
	return common.InjectRequestName(ctx, p.Name)
}

// withClients is ctx with what Tekton's injection gives its resolvers: a
// logger (silent here), the Kubernetes client and, with a cluster, Tekton's.
func withClients(ctx context.Context, opts Options) context.Context {
	ctx = logging.WithLogger(ctx, zap.NewNop().Sugar())
	ctx = context.WithValue(ctx, kubeclient.Key{}, opts.Kube)
	if opts.Tekton != nil {
		ctx = context.WithValue(ctx, pipelineclient.Key{}, opts.Tekton)
	}
	return ctx
}

// gitURLs serialises the git resolutions: Tekton's one seam for letting
// its git resolver take a local URL is a package variable.
var gitURLs sync.Mutex

// allowFileURL lets Tekton's git resolver take a file:// URL until the
// returned function is called, when FileURLs is set. A revision that looks
// like an option is not let through: that is the argument injection
// Tekton's refusal guards against (the resolver refuses ".." in the path).
func (r *Requester) allowFileURL(res framework.Resolver, params map[string]string) (done func()) {
	if _, isGit := res.(*git.Resolver); !isGit {
		return func() {}
	}
	gitURLs.Lock()
	url := params[gitresolution.UrlParam]
	if !r.opts.FileURLs || !strings.HasPrefix(url, "file://") || strings.HasPrefix(params[gitresolution.RevisionParam], "-") {
		return gitURLs.Unlock
	}
	//lint:ignore SA1019 the one seam Tekton's git resolver has for local repositories
	undo := gitresolution.SetValidateRepoURLForTesting(func(u string) bool { return u == url })
	return func() {
		undo()
		gitURLs.Unlock()
	}
}

// resolved adapts a resolver's answer to what the requester returns.
type resolved struct {
	resolutionframework.ResolvedResource
}

func (r resolved) Data() ([]byte, error) { return r.ResolvedResource.Data(), nil }

// oneLine is an error on one line: git's own output, which a git error
// carries, is several.
type oneLine struct{ err error }

func (e oneLine) Error() string {
	var lines []string
	for _, l := range strings.Split(e.err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, " ")
}

func (e oneLine) Unwrap() error { return e.err }
