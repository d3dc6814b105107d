package output

// lockFile takes the lock of the lock file path, as another process sharing
// the folder would, and returns the function that releases it.
func lockFile(path string) (func(), error) {
	f, err := openLockFile(path)
	if err != nil {
		return nil, err
	}
	if err := flockExclusive(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		if f != nil {
			f.Close()
		}
	}, nil
}
