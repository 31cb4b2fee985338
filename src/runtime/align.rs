//! Barrier alignment, as in Flink's aligned checkpoints: once an input delivers checkpoint
//! `id`'s barrier it is held (read no further) until every live input has delivered it, so the
//! operator's snapshot covers exactly the records before the barrier on every input. Kept apart
//! from the stage loop so the rule reads in one place (Arroyo's `CheckpointCounter` does the
//! same).

pub struct Alignment {
    /// Inputs that delivered the pending barrier and are held.
    held: Vec<bool>,
    pending: Option<u64>,
}

impl Alignment {
    pub fn new(inputs: usize) -> Self {
        Alignment {
            held: vec![false; inputs],
            pending: None,
        }
    }

    /// Input `input` delivered barrier `id`: hold it until the others catch up.
    pub fn arrived(&mut self, input: usize, id: u64) {
        self.held[input] = true;
        self.pending = Some(id);
    }

    /// Whether input `input` must not be read until the pending barrier is complete.
    #[inline]
    pub fn is_held(&self, input: usize) -> bool {
        self.held[input]
    }

    /// The pending barrier, once every live input has delivered it; the inputs are then
    /// released. Inputs that ended count as aligned (they will send nothing more).
    pub fn complete(&mut self, live: impl Fn(usize) -> bool) -> Option<u64> {
        let id = self.pending?;
        if (0..self.held.len()).all(|i| !live(i) || self.held[i]) {
            self.pending = None;
            self.held.iter_mut().for_each(|h| *h = false);
            Some(id)
        } else {
            None
        }
    }

    /// At the end of every input: a barrier some inputs sent before ending is still owed
    /// downstream.
    pub fn owed(&mut self) -> Option<u64> {
        self.pending.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_barrier_completes_only_when_every_live_input_delivered_it() {
        let mut a = Alignment::new(3);
        a.arrived(0, 7);
        assert!(a.is_held(0) && !a.is_held(1));
        assert_eq!(a.complete(|_| true), None);
        a.arrived(2, 7);
        assert_eq!(a.complete(|_| true), None);
        // Input 1 ended: it no longer holds the barrier back.
        assert_eq!(a.complete(|i| i != 1), Some(7));
        assert!(!a.is_held(0) && !a.is_held(2));
        assert_eq!(a.complete(|_| true), None);
        a.arrived(1, 8);
        assert_eq!(a.owed(), Some(8));
        assert_eq!(a.owed(), None);
    }
}
