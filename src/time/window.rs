//! Window assignment (tumbling, sliding, session) lives here.
