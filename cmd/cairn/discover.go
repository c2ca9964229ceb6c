package main

import (
	"fmt"
	"os"
	"path/filepath"

	"cairn.dev/cairn/internal/index"
)

// repoDir is the repository a command works on: --repo, else $CAIRN_REPO,
// else, like git, the current directory or the nearest parent that is a
// repository (see discoverRepo).
func repoDir(dir string) (string, error) {
	if dir == "" {
		dir = os.Getenv("CAIRN_REPO")
	}
	if dir != "" {
		return dir, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("no repository: pass --repo DIR or set CAIRN_REPO (finding the current directory: %w)", err)
	}
	return discoverRepo(wd)
}

// discoverRepo finds the repository from dir up (see index.IsRepository)
// and stops where git stops looking for its own: at a git repository
// that is not an index (a project's repository is never walked past to
// an index above it), and at a filesystem boundary (git's
// GIT_DISCOVERY_ACROSS_FILESYSTEM default). A repository found that the
// current user does not own is refused, not used (git's safe.directory):
// anyone who can write a parent directory could otherwise plant an index
// that cairn would read, trust and write to.
func discoverRepo(dir string) (string, error) {
	start, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("no repository: finding one from %s: %w", dir, err)
	}
	_, dev, known := ownerDevice(start)
	for d, below := dir, ""; ; d, below = filepath.Dir(d), d {
		fi, err := os.Stat(d)
		if err != nil {
			return "", &noRepoError{from: dir, stop: fmt.Sprintf("cannot read %s: %v", d, err)}
		}
		if _, dv, ok := ownerDevice(fi); known && ok && dv != dev {
			return "", &noRepoError{from: dir, stop: fmt.Sprintf("stopped at %s, the top of its filesystem, as git does", below)}
		}
		if index.IsRepository(d) {
			if uid, _, ok := ownerDevice(fi); ok && int(uid) != os.Geteuid() {
				return "", &notOwnedError{dir: d, owner: uid, user: os.Geteuid()}
			}
			return d, nil
		}
		// A repository's own index.git is a bare repository below it.
		ownIndex := filepath.Base(d) == "index.git" && index.IsRepository(filepath.Dir(d))
		if isGitRepository(d) && !ownIndex {
			return "", &noRepoError{from: dir, stop: fmt.Sprintf("stopped at %s, a git repository that is not a cairn index", d)}
		}
		if filepath.Dir(d) == d {
			return "", &noRepoError{from: dir}
		}
	}
}

// isGitRepository reports whether dir is a git work tree (it holds .git,
// a directory or a gitfile) or a bare repository.
func isGitRepository(dir string) bool {
	if _, err := os.Lstat(filepath.Join(dir, ".git")); err == nil {
		return true
	}
	head, herr := os.Stat(filepath.Join(dir, "HEAD"))
	objects, oerr := os.Stat(filepath.Join(dir, "objects"))
	return herr == nil && head.Mode().IsRegular() && oerr == nil && objects.IsDir()
}

// noRepoError says that no repository was named and none was found from
// the current directory up; stop, if set, says why the search stopped
// before the root directory.
type noRepoError struct{ from, stop string }

func (e *noRepoError) Error() string {
	if e.stop != "" {
		return fmt.Sprintf("no repository found in %s or a parent directory (%s)", e.from, e.stop)
	}
	return fmt.Sprintf("no repository found in %s or a parent directory", e.from)
}

// hint says what to do.
func (e *noRepoError) hint() string {
	return "cd into a repository (or a directory below one), name one with --repo DIR or CAIRN_REPO, or make one here with 'cairn init DIR' or 'cairn remote add NAME URL --introduction ID'"
}

// notOwnedError refuses a repository found by discovery that another user
// owns.
type notOwnedError struct {
	dir   string
	owner uint32
	user  int
}

func (e *notOwnedError) Error() string {
	return fmt.Sprintf("refusing the repository found at %s: it is owned by uid %d, not by you (uid %d)", e.dir, e.owner, e.user)
}

// hint says what to do.
func (e *notOwnedError) hint() string {
	return "another user could have planted it there: if you trust it, name it with --repo " + e.dir + "; otherwise cd into your own repository"
}
