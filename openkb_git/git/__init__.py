"""Git plumbing: durable objects, trees edited in place, references moved by compare-and-swap,
and Git index entries updated path by path. Built on dulwich's object model."""
