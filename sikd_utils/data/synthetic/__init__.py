"""Synthetic suite: procedural phantoms for the five SIKD tasks, with controllable domain shifts.

No real dataset can be downloaded where this book is built, so every notebook runs by default on
these phantoms. They are made to carry what SIKD is about: each case has an anatomy (a label map
whose shapes vary from case to case) and an appearance (how a particular scanner, camera or probe
turns that anatomy into pixels). Domains change one of the two and leave the other alone.

Public entry points (``sikd_utils.data.shifts`` builds its shift benchmark on ``render_cases``)::

    make_cases(task, domain="source", n_cases=20, image_size=128, seed=0, severity=1.0, difficulty=0) -> list[Case]

Domains
-------
``source``
    The training distribution. Anatomy and appearance are both drawn at random around a default, so
    that no two cases look the same (mild scanner-to-scanner and patient-to-patient variability).
``target``
    The same anatomy distribution rendered by a different device: the appearance parameters move
    away from the source range by ``severity`` times a fixed step, while every change is monotone
    in tissue signal, so the *ordering* of class mean intensities stays. This is the shift SIKD's
    shape-intensity prior is meant to survive (a new scanner vendor, a new camera, a new probe).
``shape_shift``
    Source appearance, but the anatomy distribution moves by ``severity`` times a fixed step (a
    different patient population). A shape prior learnt on the source is not expected to help here
    (it may even hurt); the book uses this domain as the honest control.

``severity`` is a float >= 0. 0 means no shift at all (the domain is then statistically the same as
the source, only with other random cases); 1 is the default shift, clearly outside the source's own
spread; about 2 is severe. Severity scales each shifted parameter linearly (in log units for scale
parameters), and the random numbers that drive a case do not depend on it: ``target`` cases at
severities 0, 1 and 2 share their anatomy and their noise, and differ only by the shift (likewise
``shape_shift`` cases share their appearance). ``source`` ignores severity (it is only recorded).

What each task models, and why
------------------------------
``cardiac`` -- short-axis cine MRI (bSSFP), volumes (1, H, W, D), D = 6..12 slices 7-10 mm apart,
    field of view about 190-220 mm (so about 1.6 mm pixels at 128 px). A base-to-apex stack: a left
    ventricle whose bright blood pool narrows toward the apex (the last slices hold only the apical
    myocardial cap), a dark myocardial ring, a right-ventricular crescent that ends before the apex,
    papillary muscles inside the LV cavity (labelled LV, as in ACDC), epicardial fat, lungs, chest
    wall fat and muscle, spine, descending aorta and, in apical slices, the liver. Cases differ in
    size, cardiac phase (between end-diastole and end-systole), position, orientation and slice count.
    *target*: another vendor/site. MRI intensities have no absolute scale and depend on sequence
    settings, so the tissue contrast curve changes (a power law on tissue signal: the dark tissues --
    myocardium, muscle, lung -- are pressed together while blood and fat stay bright); the
    receive-coil sensitivity gives a stronger smooth multiplicative bias field; lower SNR gives more
    Rician noise; a coarser acquisition matrix gives more blur.
    *shape_shift*: a hypertrophic population -- thicker myocardium, smaller LV cavity, larger and
    rounder-shaped RV, more elliptical LV.
``abdomen`` -- contrast-enhanced abdominal CT at the portal-venous phase, volumes (1, H, W, D),
    D = 6..12 slices of 3-5 mm, field of view about 310-360 mm (so about 2.6 mm pixels at 128 px,
    0.65 mm at 512 px).
    A slab around the level of the pancreas, where all eight organs can show: liver, gallbladder,
    stomach (with wall, contents and sometimes an air pocket), pancreas, spleen, both kidneys
    (cortex, medulla, hilum), aorta, plus IVC, vertebra, ribs, muscles, subcutaneous and visceral fat
    and bowel loops. Organs grow, shrink, appear and disappear from slice to slice. Intensities are
    produced in Hounsfield units (a base value plus an iodine-enhancement term), clipped to the
    [-125, 275] HU window of the TransUNet protocol, then percentile-normalised.
    *target*: another scanner and protocol. CT numbers are calibrated, so the shift is in what the
    calibration does not fix: a later contrast phase or a different tube voltage scales the iodine
    enhancement (all enhanced organs move toward soft tissue but keep their order); a lower dose and
    another reconstruction kernel give stronger, blotchier (more correlated) noise and a softer
    point-spread function; beam hardening adds a cupping artefact (the centre of the body darker).
    *shape_shift*: a portal-hypertension-like population -- enlarged liver and spleen, distended
    gallbladder, smaller kidneys, thinner pancreas, more abdominal fat.
``fundus`` -- colour fundus photograph (3, H, W). Circular field of view on black, orange-red
    retina with choroidal mottling, a darker macula with a foveal reflex, an optic disc (label 1 =
    neuroretinal rim) holding a paler cup (label 2) with a soft sloping edge, sometimes a
    peripapillary atrophy crescent, and vessel trees (arcades curving around the macula, nasal
    branches) radiating from the disc. Left or right eye at random.
    *target*: another fundus camera. The sensor's colour balance changes (a per-channel gain:
    less red, more green and blue), so does its tone curve (gamma), vignetting and uneven
    illumination grow, focus is softer and sensor noise stronger. Each effect is monotone per colour
    channel, so the per-channel ordering of class means survives.
    *shape_shift*: a glaucoma-like population -- larger cup-to-disc ratio, larger and more oval discs.
``polyp`` -- colonoscopy frame (3, H, W). Pink mucosa with a fine vessel network, haustral folds
    arranged around a dark lumen (light from the scope tip falls off with depth), one polyp -- a
    lobulated dome nearer to the camera, hence brighter, shaded at its edges, with a pit-pattern
    texture -- specular highlights on wet surfaces, and often the black octagonal corners of the
    endoscope video frame.
    *target*: another endoscope and video processor: white balance (a warmer, more orange-yellow
    cast), tone curve, stronger light fall-off and vignetting, blur (older, lower-resolution video)
    and sensor noise.
    *shape_shift*: smaller, flatter, more irregular polyps, and a second polyp in a growing share of
    frames.
``breast_us`` -- B-mode breast ultrasound from a linear probe (1, H, W), rectangular frame, about
    0.3 mm pixels at 128 px. Layered anatomy (skin, subcutaneous fat with Cooper's ligaments,
    fibroglandular tissue with fat lobules, retromammary fat, pectoral muscle with striations,
    sometimes a rib with its shadow) and one hypoechoic lesion: benign-like (oval, smooth,
    wider-than-tall, posterior enhancement) or malignant-like (irregular, spiculated, echogenic halo,
    posterior acoustic shadowing). The image is simulated the way a scanner forms it: tissue
    reflectivity times fully developed speckle (complex Gaussian scatterers convolved with the
    point-spread function, envelope detected), depth attenuation with time-gain compensation,
    electronic noise, then log compression to a dynamic range.
    *target*: another scanner and transducer. A lower centre frequency gives larger speckle
    (wider PSF); another grey map (the display curve applied after log compression) changes the
    contrast between echo levels; a different TGC setting tilts brightness with depth; more
    electronic noise and a stronger speckle-reduction (smoothing) filter.
    *shape_shift*: larger, more irregular, taller-than-wide lesions and more malignant-like ones.

Difficulty
----------
``difficulty`` (0-4) adds what makes each real task hard, on top of every domain: lower contrast
between adjacent classes, confounders outside the label with a class's look, small and thin
structures, partial volume, wider anatomy and boundaries the image does not show. Level 0 is the
suite above, bit for bit; each task module's ``DIFFICULTY`` table names its hardenings and the
clinical or physical reason for each (:func:`describe_difficulty`, :func:`difficulty_rows`). The
hardenings draw from a random stream of their own, so a level-k case is the level-0 patient, harder.

How large the gap is
--------------------
What a plain U-Net trained on ``source`` loses on each shifted test set is measured, not written
here: ``python -m sikd_utils gap --task all`` prints it, and the book's data page renders the table
that command produced, with its settings and date. ``sikd_utils.data.shifts`` adds named shift
families (one cause at a time, five severities each) on top of these domains.

Every case then goes through ``sikd_utils.data.preprocess.normalize_percentile`` (2nd-98th
percentile clip, rescale to [0, 1], over the whole volume and all channels), exactly like real data,
so a global gain or offset change is removed and only the shifts that matter remain.

Spacing is physical: in-plane spacing = field of view / ``image_size`` (each case draws its own field
of view), so HD95 in millimetres means the same thing at every image size. Colonoscopy frames have no
physical scale; their spacing is (1, 1), i.e. pixels.

Reproducibility: case ``i`` of a (task, domain, seed) is drawn from its own random streams, seeded
from (seed, task, domain, i), so it does not depend on ``n_cases`` (the first 20 cases are the same
whether 20 or 60 are asked for) and different domains never share an anatomy. Anatomy parameters are
expressed in millimetres or fractions of the field of view, so the same case at a different
``image_size`` shows the same anatomy. ``Case.meta`` records the seed, severity, index and the
anatomy and appearance parameters that were drawn.
"""

from .core import (DIFFICULTY_LEVELS, DOMAINS, describe, describe_difficulty, difficulty_rows, make_cases,
                   render_cases, task_module)
from .difficulty import check_difficulty

__all__ = ["DOMAINS", "DIFFICULTY_LEVELS", "make_cases", "describe", "describe_difficulty", "difficulty_rows",
           "check_difficulty", "render_cases", "task_module"]
