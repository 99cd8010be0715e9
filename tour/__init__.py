"""The newcomer's tour (``make demo``): the server and two simulated terminals through one whole
case, narrated step by step with links to what each step made. See ``tour.story``."""
