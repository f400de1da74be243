package compile

import (
	"context"

	clientset "github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	"github.com/tektoncd/pipeline/pkg/client/clientset/versioned/fake"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
	"knative.dev/pkg/apis"
)

// webhook is the Tekton API as far as a resolved object needs it: Tekton's
// reconcilers validate what a resolver returned by creating it with
// dry-run=All (apiserver.DryRunValidate), which Tekton's webhook answers by
// defaulting and validating it. Here the create does the same in-process
// and stores nothing; any other call finds no object.
func webhook(ctx context.Context) clientset.Interface {
	c := fake.NewSimpleClientset()
	c.PrependReactor("create", "*", func(action k8stesting.Action) (bool, runtime.Object, error) {
		obj := action.(k8stesting.CreateAction).GetObject().DeepCopyObject()
		create := apis.WithinCreate(ctx)
		if d, ok := obj.(apis.Defaultable); ok {
			d.SetDefaults(create)
		}
		if v, ok := obj.(apis.Validatable); ok {
			if err := v.Validate(create); err != nil {
				return true, nil, apierrors.NewBadRequest(err.Error())
			}
		}
		return true, obj, nil
	})
	return c
}
