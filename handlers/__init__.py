"""Event handlers, one module per group of events: validate -> authorize -> store ->
fan out -> reply. ``handlers.events.EVENTS`` maps each protocol event to its handler."""
