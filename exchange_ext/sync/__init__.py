"""The pure sync core: decides what to write where, given what both sides hold now.

Algorithm (a three-way comparison against a baseline, per mailbox and item):

1. The baseline is one :class:`~.records.Link` per synced item: Exchange id, change key and a
   content digest per side (per field group: times, details) as of the last sync.
2. Both sides' current state is mapped to neutral records; a side *changed* an item when its
   digest moved from the baseline (a moved change key alone is not a change, so echoes of our
   own writes and server-side key bumps are no-ops).
3. The policy for the item's kind and origin says which field groups may flow which way; a
   group changed on both sides to different values is a conflict the origin side wins.
4. Unlinked items are adopted by their tag (installation id + PSA key) before anything is
   created; items leaving the window are forgotten; deletes obey the policy; a mass-delete
   guard withholds destructive ops when one side suddenly looks empty.
5. The result is a list of ops, each carrying the baseline to persist once it succeeded, so a
   crash between any two ops converges on the next run.

Inspired (ideas only, no code) by OfflineIMAP's status repository, vdirsyncer's sync
algorithm (status + hashes, ``StorageEmpty``), Dropbox Nucleus's "synced tree" as a merge base,
and the origin-wins rules of CRM server-side sync. No Django, I/O, clock or randomness here.
"""
