//! A module's publish routes: the last topics it published on, each checked
//! once (a valid topic outside the host's namespaces, allowed by its
//! contract) and resolved on the bus once. A publish on one of them checks
//! only whether the module may send now.

use crate::bus::Route;

/// How many topics a module's routes remember (the oldest goes first).
const REMEMBERED: usize = 8;

/// The routes of one module, valid for one version of its contract.
#[derive(Default)]
pub(super) struct Routes {
    contract_version: u64,
    routes: Vec<Route>,
    /// The slot the next new route replaces once all are taken.
    next: usize,
}

impl Routes {
    /// The index of the route of `topic`, checked under `contract_version`
    /// (a changed contract forgets every route).
    pub(super) fn find(&mut self, topic: &str, contract_version: u64) -> Option<usize> {
        if self.contract_version != contract_version {
            self.routes.clear();
            self.next = 0;
            self.contract_version = contract_version;
            return None;
        }
        self.routes.iter().position(|route| route.topic() == topic)
    }

    /// Remembers `route` (checked under the current contract); its index.
    pub(super) fn insert(&mut self, route: Route) -> usize {
        if self.routes.len() < REMEMBERED {
            self.routes.push(route);
            return self.routes.len() - 1;
        }
        let index = self.next;
        self.routes[index] = route;
        self.next = (index + 1) % REMEMBERED;
        index
    }

    /// The route at `index` (from [`Routes::find`] or [`Routes::insert`]).
    pub(super) fn get_mut(&mut self, index: usize) -> Option<&mut Route> {
        self.routes.get_mut(index)
    }
}
