package main

import (
	"context"
	"strings"

	"github.com/spf13/cobra"

	"cairn.dev/cairn/internal/certifier"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/remote"
)

// completions wires shell completion (cairn completion bash|zsh|fish|…)
// for what a command's arguments and flags name: property kinds, remote
// and upstream names, and package names and versions read from the
// repository at --repo (or the one found as every command finds it).
// Keyed by command path, as examples are; a command that sets its own
// completion keeps it.
var completions = map[string]struct {
	args  cobra.CompletionFunc            // each positional argument, by position
	flags map[string]cobra.CompletionFunc // by flag name
}{
	"certify":         {args: first(packageVersions(true)), flags: map[string]cobra.CompletionFunc{"property": certificationKinds}},
	"certifier":       {flags: map[string]cobra.CompletionFunc{"remote": remoteNames, "property": certificationKinds, "property-on-failure": fixed(certifier.OnFailureTested), "findings-as": fixed(string(record.Vulnerable))}},
	"show":            {args: first(packageVersions(false))},
	"why":             {args: first(packageNames)},
	"promote":         {args: first(packageVersions(true)), flags: map[string]cobra.CompletionFunc{"to": remoteNames}},
	"pull":            {args: first(remoteNames)},
	"push":            {args: first(remoteNames)},
	"upload":          {args: then(remoteNames, packageVersions(true))},
	"remote remove":   {args: first(remoteNames)},
	"remote set-url":  {args: first(remoteNames)},
	"upstream remove": {args: first(upstreamNames)},
	"upstream set":    {args: first(upstreamNames)},
	"policy check":    {args: packageVersions(true)},
	"policy publish":  {args: first(policyNames)},
	"policy show":     {args: first(policyNames)},
	"policy log":      {args: first(policyNames)},
}

// setCompletions registers the completions on the commands under root.
func setCompletions(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if comp, ok := completions[strings.TrimPrefix(c.CommandPath(), root.Name()+" ")]; ok {
			if comp.args != nil && c.ValidArgsFunction == nil {
				c.ValidArgsFunction = comp.args
			}
			for name, fn := range comp.flags {
				if _, has := c.GetFlagCompletionFunc(name); !has && c.Flags().Lookup(name) != nil {
					c.RegisterFlagCompletionFunc(name, fn)
				}
			}
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
}

// first completes the first argument with fn, and nothing after it.
func first(fn cobra.CompletionFunc) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return fn(cmd, args, toComplete)
	}
}

// then completes the first argument with fn and every later one with rest.
func then(fn, rest cobra.CompletionFunc) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return rest(cmd, args, toComplete)
		}
		return fn(cmd, args, toComplete)
	}
}

// fixed completes with the words given.
func fixed(words ...string) cobra.CompletionFunc {
	return cobra.FixedCompletions(words, cobra.ShellCompDirectiveNoFileComp)
}

// certificationKinds completes a certification's kind (audited, tested, …).
func certificationKinds(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
	var out []cobra.Completion
	for _, k := range record.Kinds {
		if k.IsCertification() && k != record.Imported { // signed by cairn import go, not certify
			out = append(out, string(k))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// remoteNames completes the names of the repository's remotes.
func remoteNames(cmd *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return fromRepo(cmd, func(ctx context.Context, r *index.Repo) ([]string, error) {
		rms, err := remote.List(r)
		var names []string
		for _, rm := range rms {
			names = append(names, rm.Name)
		}
		return names, err
	})
}

// upstreamNames completes the names of the upstreams main follows.
func upstreamNames(cmd *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return fromRepo(cmd, func(ctx context.Context, r *index.Repo) ([]string, error) {
		ups, err := r.Followed(ctx)
		var names []string
		for _, u := range ups {
			names = append(names, u.Name)
		}
		return names, err
	})
}

// policyNames completes the names of the policies main holds.
func policyNames(cmd *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return fromRepo(cmd, func(ctx context.Context, r *index.Repo) ([]string, error) {
		c, err := r.Catalog(ctx, index.MainRef)
		if err != nil {
			return nil, err
		}
		vs, err := c.Policies()
		var names []string
		for _, v := range vs {
			names = append(names, v.Name)
		}
		return names, err
	})
}

// packageNames completes the names of the packages main publishes or
// follows.
func packageNames(cmd *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return fromRepo(cmd, func(ctx context.Context, r *index.Repo) ([]string, error) {
		return publishedNames(ctx, r)
	})
}

// packageVersions completes NAME, then NAME@VERSION once an @ is typed.
// With needVersion (certify: a version is required) a name is offered
// as NAME@, the shell adding no space after it.
func packageVersions(needVersion bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		name, _, versioned := strings.Cut(toComplete, "@")
		if !versioned {
			names, dir := packageNames(cmd, nil, toComplete)
			if needVersion {
				for i := range names {
					names[i] += "@"
				}
				dir |= cobra.ShellCompDirectiveNoSpace
			}
			return names, dir
		}
		return fromRepo(cmd, func(ctx context.Context, r *index.Repo) ([]string, error) {
			head, err := r.Head(ctx, index.MainRef)
			if err != nil {
				return nil, err
			}
			c, err := r.Catalog(ctx, head)
			if err != nil {
				return nil, err
			}
			vs, err := c.Versions(name)
			var out []string
			for _, v := range vs {
				out = append(out, name+"@"+v)
			}
			return out, err
		})
	}
}

// publishedNames lists the packages main publishes and those of the
// upstreams it follows, by name.
func publishedNames(ctx context.Context, r *index.Repo) ([]string, error) {
	head, err := r.Head(ctx, index.MainRef)
	if err != nil {
		return nil, err
	}
	pkgs, err := r.Packages(ctx, head, "")
	var names []string
	for _, p := range pkgs {
		names = append(names, p.Name)
	}
	return names, err
}

// fromRepo completes with what list reads from the repository the
// command would work on (--repo if it has one, else as found). A
// completion reads as the command's own output would, but does not
// verify what is new: it suggests, and the command run verifies. Errors
// complete nothing (cobra logs them with BASH_COMP_DEBUG_FILE).
func fromRepo(cmd *cobra.Command, list func(context.Context, *index.Repo) ([]string, error)) ([]cobra.Completion, cobra.ShellCompDirective) {
	var dir string
	if f := cmd.Flags().Lookup("repo"); f != nil {
		dir = f.Value.String()
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	r, err := openRepo(ctx, dir)
	if err != nil {
		cobra.CompDebugln("cairn: "+err.Error(), false)
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer r.Close()
	words, err := list(ctx, r)
	if err != nil {
		cobra.CompDebugln("cairn: "+err.Error(), false)
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return words, cobra.ShellCompDirectiveNoFileComp
}
